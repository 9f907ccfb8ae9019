/** The process runner (src/demo/process.ts, which the namespace bench and `natd demo` use too); tests import it from here. */
export * from '../../src/demo/process.js';
