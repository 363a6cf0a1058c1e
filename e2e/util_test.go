package e2e

import "io"

func ioReadFull(r io.Reader, buf []byte) (int, error) { return io.ReadFull(r, buf) }
