package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the binary the tests built (buildBinary), which outlives any one test.
func TestMain(m *testing.M) {
	code := m.Run()
	if binaryPath != "" {
		_ = os.RemoveAll(filepath.Dir(binaryPath))
	}
	os.Exit(code)
}
