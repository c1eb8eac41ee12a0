export { Crossing, type CrossingOptions, type CrossingPort, type OnRecord } from './crossing.js';
