package recipe

import (
	"context"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
)

// Participants lists name's queue on b, holders first, in server order,
// with what each contender stored: a request for the queue, one for a
// semaphore's waiting room, and one per contender. A semaphore's waiters
// follow its holders.
func Participants(ctx context.Context, b Backend, name string) ([]turnstile.Participant, error) {
	if err := turnstile.ValidateName(name); err != nil {
		return nil, err
	}
	// The waiting room first: a semaphore's waiter that moves among the
	// holders between the two reads is then listed twice rather than
	// missed.
	waiting, err := b.Queue(ctx, name+"/"+WaitingRoom)
	if err != nil {
		return nil, err
	}
	q, err := b.Queue(ctx, name)
	if err != nil {
		return nil, err
	}
	holds := queue.Holding(q)
	q = append(q, waiting...)
	ps := make([]turnstile.Participant, 0, len(q))
	for i, c := range q {
		e, queued, err := b.Value(ctx, c)
		if err != nil {
			return nil, err
		}
		if !queued {
			continue // left while listed
		}
		ps = append(ps, turnstile.Participant{Key: c.Key, Kind: c.Kind, Holds: i < len(holds) && holds[i],
			Token: e.Token, Identity: string(e.Value), Client: e.Client, Since: e.Since})
	}
	return ps, nil
}
