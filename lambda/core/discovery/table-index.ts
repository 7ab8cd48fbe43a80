/**
 * Part of the session table's schema: a sparse global secondary index on `InstanceId` (keys only), so
 * an event run finds the items of the instances it names with one Query each instead of a Scan.
 * Sparse: only items carrying an `InstanceId` (discovered ones) are in it. The CDK stack creates it
 * (lib/session-discovery.ts); the discovery adapter queries it; test tables carry it too.
 */
export const INSTANCE_INDEX_NAME = 'ByInstanceId';
