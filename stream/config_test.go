package stream

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"

	"github.com/userhook/userhook/eventstore"
)

func TestPipelineConfigValidateReportsEveryFault(t *testing.T) {
	handle := func(*message.Message) error { return nil }
	err := PipelineConfig{Handlers: []Handler{
		{Handle: handle},
		{Name: "a", Handle: handle},
		{Name: "a"},
	}}.Validate()
	for _, want := range []string{"no store", "no checkpoints", "no publisher", "handler 0 has no name",
		"two handlers are named a", "handler a has no Handle", "has no subscriber", "needs a Checkpoint"} {
		assert.ErrorContains(t, err, want)
	}
	_, err = NewPipeline(PipelineConfig{})
	assert.ErrorContains(t, err, "no handlers")
}

func TestRelayAndBatcherConfigs(t *testing.T) {
	_, err := NewRelay(RelayConfig{})
	for _, want := range []string{"no store", "no publisher", "no checkpoints"} {
		assert.ErrorContains(t, err, want)
	}
	_, err = NewBatcher(BatcherConfig{})
	assert.ErrorContains(t, err, "nothing to apply")
	b, err := NewBatcher(BatcherConfig{Apply: func(context.Context, []eventstore.Event) error { return nil }})
	assert.NoError(t, err)
	assert.Equal(t, 4096, cap(b.queue), "the queue's default")
	assert.Equal(t, 512, b.cfg.Max, "the batch's default")
}
