package login

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// ReadNewPassword reads a new password for a command-line tool: from a
// terminal, it prompts on out twice without echo and requires both to
// match; from anything else (a pipe, a file), it reads the first line.
// Passwords are never taken as command-line arguments, which other users
// of the machine can see in the process list.
func ReadNewPassword(in io.Reader, out io.Writer, name string) ([]byte, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(out, "New password for %s: ", name)
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(out)
		if err != nil {
			return nil, fmt.Errorf("reading the password: %w", err)
		}
		if err := checkPassword(pw); err != nil {
			return nil, err
		}
		fmt.Fprint(out, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(out)
		if err != nil {
			return nil, fmt.Errorf("reading the password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the two passwords differ")
		}
		return pw, nil
	}
	line, err := bufio.NewReader(io.LimitReader(in, MaxPasswordLen+2)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the password from standard input: %w", err)
	}
	pw := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(pw) == 0 {
		return nil, errors.New("no password on standard input (give it on the first line, or run in a terminal to be prompted)")
	}
	return pw, checkPassword(pw)
}
