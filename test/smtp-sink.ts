/**
 * A minimal SMTP server for tests, started by vitest.config.mts in Node (so tsconfig.json,
 * which type-checks code that runs in workerd, leaves it out): it speaks just
 * enough ESMTP for a client to deliver, and keeps what it received. Tests read it at
 * http://smtp-inbox.test/, which the config's outbound handler answers.
 */
import { createServer, type Socket } from "node:net";

import type { Delivery } from "./helpers/smtp.ts";

const received: Delivery[] = [];

function session(socket: Socket) {
  let buffer = "";
  let inData = false;
  let mail = { from: "", to: [] as string[], data: "", auth: "" };
  const say = (line: string) => socket.write(`${line}\r\n`);
  say("220 smtp-sink ready");
  socket.on("data", (chunk) => {
    buffer += chunk.toString("utf8");
    let at: number;
    while ((at = buffer.indexOf("\r\n")) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      if (inData) {
        if (line === ".") {
          inData = false;
          received.push(mail);
          mail = { from: "", to: [], data: "", auth: mail.auth };
          say("250 OK queued");
        } else mail.data += `${line.startsWith("..") ? line.slice(1) : line}\n`;
        continue;
      }
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === "EHLO") socket.write("250-smtp-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n");
      else if (verb === "HELO") say("250 smtp-sink");
      else if (verb === "AUTH") {
        mail.auth = line;
        say("235 Authentication successful");
      } else if (verb === "MAIL") {
        mail.from = line;
        say("250 OK");
      } else if (verb === "RCPT") {
        mail.to.push(line);
        say("250 OK");
      } else if (verb === "DATA") {
        inData = true;
        say("354 End data with <CR><LF>.<CR><LF>");
      } else if (verb === "QUIT") {
        say("221 Bye");
        socket.end();
      } else if (verb === "RSET" || verb === "NOOP") say("250 OK");
      else say("502 Command not implemented");
    }
  });
}

/** Starts the sink on a free loopback port; it does not keep the process alive. */
export async function startSmtpSink() {
  const server = createServer(session);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.unref();
  const address = server.address();
  return { port: typeof address === "object" && address ? address.port : 0, received };
}
