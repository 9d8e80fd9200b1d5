import { invalidArgument } from "./errors";

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Names users choose (projects, environments, capsules, groups, roles) are DNS labels. */
export function checkDnsLabel(field: string, value: string): string {
  if (!DNS_LABEL.test(value)) {
    throw invalidArgument(field, `"${value}" is not a DNS label: use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit`);
  }
  return value;
}
