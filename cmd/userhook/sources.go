package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/userhook/userhook"
	"github.com/userhook/userhook/source"
)

// sourceCmd is `userhook source`: the identity providers' own webhooks, managed on the database as the
// admin API does.
type sourceCmd struct {
	Create sourceCreateCmd `cmd:"" help:"Add a source and print its ingest path and secret, once."`
	List   sourceListCmd   `cmd:"" help:"List the sources (secrets masked)."`
	Revoke sourceRevokeCmd `cmd:"" help:"Delete a source: its provider's requests are refused from then on."`
}

type sourceCreateCmd struct {
	databaseFlags `embed:""`
	Name          string   `help:"what the source is (e.g. \"Clerk production\")"`
	Provider      string   `help:"clerk, workos, okta, auth0-logs, keycloak or zitadel" placeholder:"PROVIDER"`
	Secret        []string `help:"the provider's signing secret (Clerk, WorkOS, Zitadel issue one; repeat for a rotation); generated when not given for the others" placeholder:"SECRET"`
}

// Run checks every flag at once, then stores the source.
func (c *sourceCreateCmd) Run(s *session) error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("--name is required"))
	}
	if strings.IndexFunc(c.Name, unicode.IsControl) >= 0 || !utf8.ValidString(c.Name) {
		errs = append(errs, errors.New("--name must be valid UTF-8 without control characters"))
	}
	provider, err := source.ParseProvider(c.Provider)
	if err != nil {
		errs = append(errs, errors.New("--provider must be clerk, workos, okta, auth0-logs, keycloak or zitadel"))
	}
	if len(c.Secret) > source.MaxSecrets {
		errs = append(errs, errors.New("--secret at most twice"))
	}
	if err == nil && provider.IssuesSecret() && len(c.Secret) == 0 {
		errs = append(errs, fmt.Errorf("--secret is required: %s issues the signing secret", provider))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("source create: %w", err)
	}
	st, err := openStorage(s.ctx, c.config())
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	src := source.Source{ID: source.NewID(), Name: c.Name, Provider: provider, Secrets: c.Secret, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if len(src.Secrets) == 0 {
		src.Secrets = []string{source.GenerateSecret()}
	}
	if err := st.sources.Create(s.ctx, src); err != nil {
		return err
	}
	fmt.Fprintf(s.stderr, "created source %s (%s, %s): point the provider at POST /sources/%s; the secret is shown once, below\n",
		src.ID, src.Name, src.Provider, src.ID)
	fmt.Fprintf(s.stdout, "/sources/%s\n%s\n", src.ID, src.Secrets[len(src.Secrets)-1])
	return nil
}

type sourceListCmd struct {
	databaseFlags `embed:""`
	JSON          bool `name:"json" help:"one JSON object a line instead of a table"`
}

// sourceLine is a source as the list prints it: never a secret.
type sourceLine struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Provider    source.Provider `json:"provider"`
	IngestPath  string          `json:"ingestPath"`
	Enabled     bool            `json:"enabled"`
	Secrets     int             `json:"secrets"`
	CreatedAt   time.Time       `json:"createdAt"`
	LastEventAt *time.Time      `json:"lastEventAt"`
}

// Run prints the sources.
func (c *sourceListCmd) Run(s *session) error {
	st, err := openStorage(s.ctx, c.config())
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.sources.List(s.ctx)
	if err != nil {
		return err
	}
	lines := make([]sourceLine, len(list))
	for i, src := range list {
		lines[i] = sourceLine{ID: src.ID, Name: src.Name, Provider: src.Provider, IngestPath: "/sources/" + src.ID,
			Enabled: src.Enabled, Secrets: len(src.Secrets), CreatedAt: src.CreatedAt}
		if !src.LastEventAt.IsZero() {
			t := src.LastEventAt
			lines[i].LastEventAt = &t
		}
	}
	if c.JSON {
		enc := json.NewEncoder(s.stdout)
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPROVIDER\tENABLED\tCREATED\tLAST EVENT")
	for _, l := range lines {
		last := "-"
		if l.LastEventAt != nil {
			last = l.LastEventAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\n", l.ID, l.Name, l.Provider, l.Enabled, l.CreatedAt.Format(time.RFC3339), last)
	}
	return tw.Flush()
}

type sourceRevokeCmd struct {
	databaseFlags `embed:""`
	ID            string `arg:"" help:"the source's id (src_...)"`
}

// Run deletes the source.
func (c *sourceRevokeCmd) Run(s *session) error {
	st, err := openStorage(s.ctx, c.config())
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.sources.Delete(s.ctx, c.ID); err != nil {
		if errors.Is(err, userhook.ErrNotFound) {
			return fmt.Errorf("source revoke: no source %q", c.ID)
		}
		return err
	}
	fmt.Fprintf(s.stderr, "revoked %s: its provider's requests are refused from now on\n", c.ID)
	return nil
}
