export * from './pgd.js';
export * from './fgsm.js';
