/**
 * `edgeplane completion bash|zsh|fish`: a completion script generated from the command tree,
 * so it offers every subcommand and flag of the command typed so far.
 */
import { Argument, Command } from "@commander-js/extra-typings";

interface Node {
  /** Command words after `edgeplane`, space-separated ("" for the root). */
  path: string;
  subcommands: string[];
  flags: string[];
}

/** Every command of the tree with what may follow it. */
export function commandTable(root: Command): Node[] {
  const nodes: Node[] = [];
  const walk = (command: Command, path: string, inherited: string[]) => {
    const own = command.options.flatMap((o) => [o.short, o.long].filter((f): f is string => Boolean(f)));
    const flags = [...new Set([...own, ...inherited, "--help"])];
    const subcommands = command.commands.map((c) => c.name());
    nodes.push({ path, subcommands, flags });
    // The root's flags (-P, -E, -o, …) work after any subcommand too.
    for (const sub of command.commands) walk(sub as Command, path ? `${path} ${sub.name()}` : sub.name(), path ? inherited : own.filter((f) => f !== "-V" && f !== "--version"));
  };
  walk(root, "", []);
  return nodes;
}

function bash(nodes: Node[]): string {
  const cases = nodes.map((n) => `    "${n.path}") echo "${[...n.subcommands, ...n.flags].join(" ")}" ;;`).join("\n");
  return `# edgeplane completion for bash: source <(edgeplane completion bash)
_edgeplane_words() {
  case "$1" in
${cases}
    *) return 1 ;;
  esac
}
_edgeplane() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" next w
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    [[ "$w" == -* ]] && continue
    next="\${path:+$path }$w"
    _edgeplane_words "$next" >/dev/null && path="$next"
  done
  COMPREPLY=($(compgen -W "$(_edgeplane_words "$path")" -- "$cur"))
}
complete -F _edgeplane edgeplane
`;
}

function fish(nodes: Node[]): string {
  const lines = ["# edgeplane completion for fish: edgeplane completion fish | source", "complete -c edgeplane -f"];
  for (const n of nodes) {
    const words = n.path ? n.path.split(" ") : [];
    // fish has no "exactly this path" condition: the path's words seen, and none of its subcommands yet.
    const seen = words.map((w) => `__fish_seen_subcommand_from ${w}`);
    const notYet = n.subcommands.length ? [`not __fish_seen_subcommand_from ${n.subcommands.join(" ")}`] : [];
    const condition = words.length ? [...seen, ...notYet].join("; and ") : "__fish_use_subcommand";
    if (n.subcommands.length) lines.push(`complete -c edgeplane -n '${condition}' -a '${n.subcommands.join(" ")}'`);
  }
  return `${lines.join("\n")}\n`;
}

export function completionCommand(root: Command) {
  return new Command("completion")
    .description("print a shell completion script")
    .addArgument(new Argument("<shell>").choices(["bash", "zsh", "fish"] as const))
    .addHelpText("after", "\nbash: source <(edgeplane completion bash)\nzsh:  source <(edgeplane completion zsh)\nfish: edgeplane completion fish | source")
    .action((shell) => {
      const nodes = commandTable(root);
      if (shell === "fish") process.stdout.write(fish(nodes));
      else process.stdout.write(shell === "zsh" ? `autoload -U +X bashcompinit && bashcompinit\n${bash(nodes)}` : bash(nodes));
    });
}
