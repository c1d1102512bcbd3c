package builder_test

import (
	"fmt"
	"io"
	"log"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }
