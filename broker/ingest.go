package broker

import (
	"context"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/policy"
)

// SyntheticRule is the audit rule of a submission loaded by
// IngestSynthetic: an operator's act, not a grant's.
const SyntheticRule = "synthetic data loaded by an operator"

// IngestSynthetic deposits one plaintext submission on an operator's
// authority (actor, e.g. "cli:root"): the real ingest path — decode, area
// check, validate, split, seal, store with its audit event and receipt —
// without HTTP and the age layer, so that synthetic censuses for tests and
// benchmarks load fast yet are stored exactly as deposits are. Calling it
// again with the same bytes returns the first receipt.
func (b *Broker) IngestSynthetic(ctx context.Context, actor string, plaintext []byte) (*Receipt, error) {
	if actor == "" {
		return nil, errorf(Invalid, nil, "an actor is required")
	}
	if len(plaintext) > form.MaxBody {
		return nil, errorf(TooLarge, nil, "submission over %d bytes", form.MaxBody)
	}
	d := policy.Decision{Allow: true, Rule: SyntheticRule}
	// The operator holds no grants: the caller only names the depositor;
	// the decision is the operator's, recorded as such.
	c := &Caller{User: UserID(actor)}
	newEvent := func(d policy.Decision) *audit.Event {
		ev := b.event(nil, string(policy.Deposit), d)
		ev.Actor = actor
		return ev
	}
	authorize := func(AreaCode) (policy.Decision, error) { return d, nil }
	res, err := b.depositPlain(ctx, c, plaintext, d, newEvent, authorize)
	if err != nil {
		return nil, err
	}
	return res.Receipt, nil
}
