/** What the test SMTP sink (test/smtp-sink.ts, in Node) received, as tests read it. */
export interface Delivery {
  from: string;
  to: string[];
  data: string;
  auth: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    /** Port of the test SMTP sink on 127.0.0.1. */
    smtpPort: number;
  }
}

/** Everything the sink has received so far (served by vitest.config.mts's outbound handler). */
export async function smtpInbox(): Promise<Delivery[]> {
  return (await (await fetch("http://smtp-inbox.test/")).json()) as Delivery[];
}
