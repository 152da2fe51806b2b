import { coreProperties } from './properties.js';

coreProperties('fixed-window');
