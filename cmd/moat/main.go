// Command moat secures a Linux server end to end; see `moat help`.
package main

import (
	"os"

	"github.com/moat-sec/moat/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
