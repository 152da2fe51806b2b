import { coreProperties } from './properties.js';

coreProperties('sliding-window');
