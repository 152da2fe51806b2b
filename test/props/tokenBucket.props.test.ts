import { coreProperties } from './properties.js';

coreProperties('token-bucket');
