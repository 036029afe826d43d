/**
 * One keep-alive HTTP/1.1 connection that sends a request and reads its whole response,
 * over a plain TCP socket: the request is one pre-formatted write, and the response is
 * parsed only as far as its status, its framing (content-length or chunked) and its size.
 *
 * Why not node:http: the load generator shares the machine's two cores with the stack it
 * measures. node:http's client (ClientRequest, IncomingMessage, its parser and streams)
 * cost 0.14 to 0.2 ms of CPU per request at B1's rates, as much as a third of what the API
 * itself spends on a boot; this costs a fraction of that (docs/benchmarks.md).
 */
import net from "node:net";

export interface RawResponse {
  status: number;
  /** Body bytes (after de-chunking). */
  bytes: number;
}

const HEADER_END = Buffer.from("\r\n\r\n");

export class RawHttpConnection {
  private socket: net.Socket | null = null;
  private buffered: Buffer = Buffer.alloc(0);
  private pending: { resolve: (r: RawResponse) => void; reject: (err: Error) => void } | null = null;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  private connect(): net.Socket {
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    socket.on("data", (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.parse();
    });
    const fail = (err: Error) => {
      if (this.socket !== socket) return; // closed on purpose, maybe already replaced
      this.socket = null;
      this.buffered = Buffer.alloc(0);
      const p = this.pending;
      this.pending = null;
      p?.reject(err);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed before the response ended")));
    return socket;
  }

  /** Sends one request (the caller waits for its answer before the next). */
  send(request: Buffer | string): Promise<RawResponse> {
    if (this.pending) throw new Error("one request at a time per connection");
    this.socket ??= this.connect();
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket!.write(request);
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }

  private parse(): void {
    const buf = this.buffered;
    const headEnd = buf.indexOf(HEADER_END);
    if (headEnd < 0) return;
    const head = buf.toString("latin1", 0, headEnd);
    const status = Number(head.slice(9, 12));
    const lower = head.toLowerCase();
    const bodyStart = headEnd + 4;
    let bytes: number;
    let end: number;
    const length = /\r\ncontent-length: *(\d+)/.exec(lower);
    if (length) {
      bytes = Number(length[1]);
      end = bodyStart + bytes;
      if (buf.length < end) return;
    } else if (/\r\ntransfer-encoding: *chunked/.test(lower)) {
      const chunked = dechunkedSize(buf, bodyStart);
      if (chunked === null) return;
      ({ bytes, end } = chunked);
    } else {
      bytes = 0; // 204, 304 and the like
      end = bodyStart;
    }
    this.buffered = buf.length > end ? buf.subarray(end) : Buffer.alloc(0);
    const p = this.pending;
    this.pending = null;
    if (/\r\nconnection: *close/.test(lower)) this.close();
    p?.resolve({ status, bytes });
  }
}

/** The body size and where the chunked body ends, or null while it is incomplete. */
function dechunkedSize(buf: Buffer, from: number): { bytes: number; end: number } | null {
  let at = from;
  let bytes = 0;
  for (;;) {
    const lineEnd = buf.indexOf("\r\n", at);
    if (lineEnd < 0) return null;
    const size = parseInt(buf.toString("latin1", at, lineEnd), 16);
    if (size === 0) {
      const trailerEnd = buf.indexOf(HEADER_END, lineEnd);
      return trailerEnd < 0 ? null : { bytes, end: trailerEnd + 4 };
    }
    at = lineEnd + 2 + size + 2;
    if (buf.length < at) return null;
    bytes += size;
  }
}

/** The request as one write: request line, headers and body. */
export function formatRequest(host: string, method: string, path: string, headers: Record<string, string>, body?: string): string {
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  if (body !== undefined) head += `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
  return `${head}\r\n${body ?? ""}`;
}
