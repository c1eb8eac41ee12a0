export { HttpServer, sendJson, type RouteHandler } from './http-server.js';
