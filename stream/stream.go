// Package stream is the plumbing between the event store and its consumers: the relay that publishes the
// store to Watermill in position order, the pipeline that runs the relay and a Watermill router with every
// consumer (the users projection, the webhook deliveries), the batcher that lets a consumer commit many
// events at once, the message codec, the poison topic, and LagWatch, which judges whether a consumer keeps up.
//
// The event store is the outbox. The relay advances its checkpoint only after Watermill acknowledged a
// publish; every consumer saves its own checkpoint with its work, so a crash anywhere repeats work and never
// loses it. Nothing here knows what a user is: consumers bring their own handlers.
package stream

import "context"

// RelayCheckpoint is the relay's checkpoint name.
const RelayCheckpoint = "relay"

// Checkpoints keeps named positions.
type Checkpoints interface {
	// Checkpoint returns the saved position of name, 0 when none was saved.
	Checkpoint(ctx context.Context, name string) (int64, error)
	// SaveCheckpoint records position for name; a smaller position than the saved one is ignored.
	SaveCheckpoint(ctx context.Context, name string, position int64) error
}
