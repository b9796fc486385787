package llmconfig

import (
	"context"
	"errors"
	"io"
	"math/rand"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	llmconfigv1 "github.com/stigmer/llmconfig/go/llmconfig/v1"
)

// Watch calls WatchLLMConfig and keeps it open, as the Python client's watch does: handle
// gets the caller's current resolution (unless request.KnownRevision is it), then one event
// each time it changes. When the server ends the stream — a restart, the end of a connection's
// 30 minutes, a dropped connection — Watch opens it again after a jittered backoff (0.1 s →
// 5 s) with the last revision seen, so no change is missed and none is repeated. An event may
// carry an error instead of a config (FromStatus decodes it): the config turned invalid, and
// the stream goes on.
//
// Watch returns ctx's error when ctx ends, handle's error when it returns one, and the
// decoded *Error of any status other than UNAVAILABLE (UNAUTHENTICATED, PERMISSION_DENIED,
// INVALID_ARGUMENT: asking again would not help).
func Watch(ctx context.Context, client llmconfigv1.LLMConfigServiceClient, request *llmconfigv1.WatchLLMConfigRequest,
	handle func(*llmconfigv1.WatchLLMConfigEvent) error, opts ...grpc.CallOption) error {
	request = proto.Clone(request).(*llmconfigv1.WatchLLMConfigRequest)
	opts = append([]grpc.CallOption{grpc.WaitForReady(true)}, opts...)
	delay := newPause(100*time.Millisecond, 5*time.Second)
	for {
		err := watchOnce(ctx, client, request, handle, delay, opts)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay.next()):
		}
	}
}

// watchOnce runs one stream to its end: nil when Watch should open it again.
func watchOnce(ctx context.Context, client llmconfigv1.LLMConfigServiceClient, request *llmconfigv1.WatchLLMConfigRequest,
	handle func(*llmconfigv1.WatchLLMConfigEvent) error, delay *pause, opts []grpc.CallOption) error {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.WatchLLMConfig(streamCtx, request, opts...)
	for err == nil {
		var event *llmconfigv1.WatchLLMConfigEvent
		if event, err = stream.Recv(); err != nil {
			break
		}
		delay.reset()
		request.KnownRevision = event.GetConfig().GetRevision() // "" after an error event: resend
		if err := handle(event); err != nil {
			return err
		}
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	if decoded := FromError(err); decoded.Code != codes.Unavailable {
		return decoded
	}
	return nil
}

// pause is the wait before a stream is opened again: exponential with full jitter, so a fleet
// of watchers does not reconnect in lockstep after a restart.
type pause struct {
	first, limit, current time.Duration
	random                *rand.Rand // its own, seeded: Go before 1.20 seeds the global one with 1
}

func newPause(first, limit time.Duration) *pause {
	return &pause{first: first, limit: limit, current: first, random: rand.New(rand.NewSource(time.Now().UnixNano()))}
}

func (b *pause) reset() { b.current = b.first }

func (b *pause) next() time.Duration {
	delay := time.Duration(b.random.Int63n(int64(b.current) + 1))
	if b.current *= 2; b.current > b.limit {
		b.current = b.limit
	}
	return delay
}
