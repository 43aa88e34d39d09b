// `palisade completion bash|zsh`: a completion script made from the verb table
// (program.ts): every verb, its subcommands and its flags, and the values of -o. It
// loads every verb's module to read them, once, when the script is generated.
//   bash: source <(palisade completion bash)      zsh: source <(palisade completion zsh)
import type { Option, Command } from "commander";
import { Command as Cmd } from "commander";
import { CliError, EXIT, usageError } from "../errors.ts";
import { FORMATS, out } from "../output.ts";
import type { CommandEntry } from "../verb.ts";

export interface VerbTree {
  name: string;
  flags: string[];
  subcommands: VerbTree[];
}

const flagsOf = (c: Command) => [
  ...c.options
    .filter((o: Option) => !o.hidden)
    .flatMap((o: Option) => [o.long, o.short].filter((x): x is string => !!x)),
  "--help",
];

function tree(c: Command): VerbTree {
  return {
    name: c.name(),
    flags: flagsOf(c),
    subcommands: c.commands.filter((s) => !(s as unknown as { _hidden?: boolean })._hidden).map(tree),
  };
}

export async function verbTrees(verbs: Record<string, CommandEntry>): Promise<VerbTree[]> {
  const out: VerbTree[] = [];
  for (const [name, entry] of Object.entries(verbs)) {
    const root = new Cmd();
    (await entry.load()).register(root, verbs);
    const c = root.commands.find((x) => x.name() === name);
    if (c) out.push(tree(c));
  }
  return out;
}

const words = (xs: string[]) => xs.join(" ");

export function bashScript(verbs: VerbTree[]): string {
  const verbCase = verbs
    .map((v) => `    ${v.name}) subs="${words(v.subcommands.map((s) => s.name))}"; flags="${words(v.flags)}";;`)
    .join("\n");
  const subCase = verbs
    .flatMap((v) => v.subcommands.map((s) => `    "${v.name} ${s.name}") flags="${words(s.flags)}";;`))
    .join("\n");
  return `# palisade completion for bash. Load with: source <(palisade completion bash)
_palisade() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local verb="" sub="" subs="" flags="" i w
  if [[ $prev == -o || $prev == --output ]]; then
    COMPREPLY=( $(compgen -W "${words([...FORMATS])}" -- "$cur") ); return
  fi
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    [[ $w == -* ]] && continue
    if [[ -z $verb ]]; then verb=$w; continue; fi
    case "$verb" in
${verbCase}
    esac
    if [[ -z $sub && " $subs " == *" $w "* ]]; then sub=$w; fi
  done
  if [[ -z $verb ]]; then
    COMPREPLY=( $(compgen -W "${words(verbs.map((v) => v.name))} --help --version" -- "$cur") ); return
  fi
  case "$verb" in
${verbCase}
  esac
  if [[ -n $sub ]]; then
    case "$verb $sub" in
${subCase}
    esac
    COMPREPLY=( $(compgen -W "$flags" -- "$cur") ); return
  fi
  if [[ $cur == -* || -z $subs ]]; then COMPREPLY=( $(compgen -W "$flags" -- "$cur") ); return; fi
  COMPREPLY=( $(compgen -W "$subs" -- "$cur") )
}
complete -o default -F _palisade palisade
`;
}

/** zsh runs the bash function through bashcompinit (one script to keep right). */
export function zshScript(verbs: VerbTree[]): string {
  return `#compdef palisade
# palisade completion for zsh. Load with: source <(palisade completion zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(verbs).split("\n").slice(1).join("\n")}`;
}

export function register(program: Command, verbs?: Record<string, CommandEntry>): void {
  program
    .command("completion")
    .description("print a shell completion script: bash or zsh (source <(palisade completion bash))")
    .argument("<shell>", "bash or zsh")
    .action(async (shell: string) => {
      if (shell !== "bash" && shell !== "zsh") throw usageError(`no completion for "${shell}": bash or zsh`);
      if (!verbs) throw new CliError("internal", "the verb table was not passed to completion", EXIT.generic);
      const trees = await verbTrees(verbs);
      out(shell === "bash" ? bashScript(trees) : zshScript(trees));
    });
}
