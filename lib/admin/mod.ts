/**
 * Admin features: Identify decoding with nvme-cli's field names.
 * @module
 */
export * from "./identify.ts";
