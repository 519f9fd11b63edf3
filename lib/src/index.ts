/** Public surface of the rift-bn library. */
export * from './engine.js';
