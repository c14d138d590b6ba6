/**
 * Fabrics commands (Connect, Property Get/Set) and their data are transport
 * neutral and live in lib/nvme/fabrics.ts; re-exported here for lib/tcp users.
 * @module
 */
export * from "../nvme/fabrics.ts";
