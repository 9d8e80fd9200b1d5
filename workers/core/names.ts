import { invalidArgument, quote } from "./errors";

/** One DNS label, as a regular expression source (for composing host names). */
export const DNS_LABEL_SOURCE = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
const DNS_LABEL = new RegExp(`^${DNS_LABEL_SOURCE}$`);

export const isDnsLabel = (value: string) => DNS_LABEL.test(value);

/** Names users choose (projects, environments, capsules, groups, roles) are DNS labels. */
export function checkDnsLabel(field: string, value: string): string {
  if (!isDnsLabel(value)) {
    throw invalidArgument(field, `${quote(value)} is not a DNS label: use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit`);
  }
  return value;
}
