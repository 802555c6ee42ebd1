package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// completionCmd prints a completion script generated from the command line's own model, so it cannot
// drift from it. No completion package for kong is maintained today (kongplete and kong-completion are
// built for kong before v1 on posener/complete v1), and the script is short: commands, subcommands and
// flags, and the shell's file names after a flag that takes a value.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh" help:"bash or zsh; load it with: source <(userhook completion bash)"`
}

// Run prints the script.
func (c *completionCmd) Run(s *session, k *kong.Context) error {
	script := completionScript(k.Model.Node)
	if c.Shell == "zsh" {
		script = "autoload -U +X bashcompinit && bashcompinit\n" + script
	}
	_, err := io.WriteString(s.stdout, script)
	return err
}

// completionScript is a bash completion function for the commands below root: a command's subcommands, or
// its flags after a "-".
func completionScript(root *kong.Node) string {
	var commands, flagWords strings.Builder
	var valueFlags []string
	var walk func(n *kong.Node, path string)
	walk = func(n *kong.Node, path string) {
		var subs, flags []string
		for _, child := range n.Children {
			if child.Type == kong.CommandNode && !child.Hidden {
				subs = append(subs, child.Name)
			}
		}
		for _, group := range n.AllFlags(true) {
			for _, f := range group {
				flags = append(flags, "--"+f.Name)
				if !f.IsBool() && !slices.Contains(valueFlags, "--"+f.Name) {
					valueFlags = append(valueFlags, "--"+f.Name)
				}
			}
		}
		if len(subs) > 0 {
			fmt.Fprintf(&commands, "\t%q) echo %q ;;\n", path, strings.Join(subs, " "))
		}
		fmt.Fprintf(&flagWords, "\t%q) echo %q ;;\n", path, strings.Join(flags, " "))
		for _, child := range n.Children {
			if child.Type == kong.CommandNode && !child.Hidden {
				walk(child, strings.TrimSpace(path+" "+child.Name))
			}
		}
	}
	walk(root, "")
	return fmt.Sprintf(`# userhook completion: source <(userhook completion bash)
_userhook_commands() {
	case "$1" in
%s	esac
}
_userhook_flags() {
	case "$1" in
%s	esac
}
_userhook() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} path="" word i
	case " %s " in *" $prev "*) COMPREPLY=(); return ;; esac
	for ((i = 1; i < COMP_CWORD; i++)); do
		word=${COMP_WORDS[i]}
		case " $(_userhook_commands "$path") " in *" $word "*) path=${path:+$path }$word ;; esac
	done
	case "$cur" in
	-*) COMPREPLY=($(compgen -W "$(_userhook_flags "$path")" -- "$cur")) ;;
	*) COMPREPLY=($(compgen -W "$(_userhook_commands "$path")" -- "$cur")) ;;
	esac
}
complete -o default -F _userhook userhook
`, commands.String(), flagWords.String(), strings.Join(valueFlags, " "))
}
