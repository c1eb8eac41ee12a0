export { Uplink, upstreamTopics, type UplinkOptions, type OutboxSource } from './uplink.js';
