/**
 * Streamed responses reach the client as they are written, whatever `Accept-Encoding` it
 * sends. Cloudflare compresses text types such as `application/json` for clients that accept
 * gzip or br (`wrangler dev` does the same, in Miniflare's entry worker), and a compressed
 * stream sits in the encoder until it ends (workerd #7390), so a live stream would arrive
 * all at once when it closes. `Content-Encoding: identity` declares the body already encoded
 * as it is, which both leave alone; `Cache-Control: no-transform` keeps any proxy on the way
 * from re-encoding it. Every streamed answer (Connect and gRPC-Web server streams, JSON
 * lines, Skaffold's NDJSON gateway) gets these headers here.
 */
export function unbuffered(headers: Headers): Headers {
  headers.set("content-encoding", "identity");
  headers.set("cache-control", "no-transform");
  return headers;
}
