/**
 * The Fabrics commands' wire format (Connect, Property Get/Set, the Connect
 * data) is transport neutral and lives in lib/nvme/fabrics.ts with the fabric
 * transport operations; its names are re-exported here for lib/tcp users.
 * @module
 */
export {
  CATTR_DISABLE_SQFLOW,
  CNTLID_DYNAMIC,
  connectCmd,
  ConnectData,
  connectData,
  type ConnectDataParams,
  type ConnectParams,
  dataDirection,
  decodeConnectData,
  DISCOVERY_NQN,
  FABRICS_OPCODE,
  FabricsSqe,
  FcType,
  type HostIdentity,
  hostIdentity,
  NQN_MAX,
  propertyGetCmd,
  propertySetCmd,
  readNqn,
  SC_CONNECT_INVALID_PARAM,
} from "../nvme/fabrics.ts";
