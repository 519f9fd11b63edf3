export * from './pgd.js';
export * from './fgsm.js';
export * from './apgd.js';
export * from './square.js';
export * from './fab.js';
export * from './autoattack.js';
