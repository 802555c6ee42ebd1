package main

import (
	"github.com/userhook/userhook/source"
	"github.com/userhook/userhook/source/auth0logs"
	"github.com/userhook/userhook/source/clerk"
	"github.com/userhook/userhook/source/keycloak"
	"github.com/userhook/userhook/source/okta"
	"github.com/userhook/userhook/source/workos"
	"github.com/userhook/userhook/source/zitadel"
)

// decoders are the providers' decoders, one per provider of source.Providers.
func decoders() map[source.Provider]source.Decoder {
	return map[source.Provider]source.Decoder{
		source.Clerk:     clerk.Decoder{},
		source.WorkOS:    workos.Decoder{},
		source.Okta:      okta.Decoder{},
		source.Auth0Logs: auth0logs.Decoder{},
		source.Keycloak:  keycloak.Decoder{},
		source.Zitadel:   zitadel.Decoder{},
	}
}
