/** The namespace test bench lives in src/testbed/topology.ts (natd demo uses it too); tests import it from here. */
export * from '../../../src/testbed/topology.js';
