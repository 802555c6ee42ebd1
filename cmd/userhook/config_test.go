package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRedactDatabase(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"./data/userhook.db":                             "./data/userhook.db",
		"postgres://u:s3cret@db:5432/uh?sslmode=disable": "postgres://u:%2A%2A%2A@db:5432/uh?sslmode=disable",
		"postgres://db/uh?user=u&password=s3cret":        "postgres://db/uh?password=%2A%2A%2A&user=u",
		"postgres://u@db/uh":                             "postgres://u@db/uh",
	} {
		got := redactDatabase(in)
		assert.Equal(t, want, got, in)
		assert.NotContains(t, got, "s3cret")
	}
}
