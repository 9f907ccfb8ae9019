/** The namespace test bench lives in src/demo/topology.ts (natd demo uses it too); tests import it from here. */
export * from '../../src/demo/topology.js';
