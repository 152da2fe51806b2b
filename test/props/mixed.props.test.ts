import { coreProperties } from './properties.js';

coreProperties('mixed');
