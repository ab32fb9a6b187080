package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/storage"
)

// Where new tokens may go. A token is a user's whole access: whoever
// chooses the recipient it is encrypted to holds it. Over the API an
// administrator therefore never chooses: new and reissued tokens are
// encrypted to the field office's recipient, which only the host
// operator registers (SetTokenRecipient), or — for a reissue — to the
// user's own registered recipient. Otherwise an administrator could
// create or reissue a team leader's, processor's or approver's token to
// a key of their own and act as them (red team, issue 13).

const metaTokenRecipient = "token_recipient"

// SetTokenRecipient registers (or with "" removes) the field office's
// age recipient, to which tokens made over the API are encrypted. Host
// operator only; audited (the recipient is a public key: the event
// names its start).
func (b *Broker) SetTokenRecipient(ctx context.Context, op Operator, recipient string) error {
	if !op.host() {
		ev, err := b.authorizeAdmin(ctx, op, "user.token_recipient", nil)
		if err != nil {
			return err
		}
		return b.refused(ctx, op, ev, &Error{Kind: Permission, Code: "host_only",
			Msg: "the field office's token recipient is registered on the vault host: censusvault user token-recipient age1… --data DIR"})
	}
	recipient, err := optionalRecipient(recipient)
	if err != nil {
		return err
	}
	now := b.now().UTC()
	err = b.store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.PutMeta(metaTokenRecipient, recipient); err != nil {
			return err
		}
		reason := "token recipient removed: tokens can no longer be made over the API"
		if recipient != "" {
			reason = "token recipient " + RecipientStart(recipient)
		}
		_, err := appendEvent(tx, &audit.Event{Time: now, Actor: op.actor, Roles: []string{}, Action: "user.token_recipient",
			Area: string(b.tree.Root()), Decision: "allow", Rule: hostRule, Reason: reason, Outcome: "ok"})
		return err
	})
	if err != nil {
		return errorf(Unavailable, err, "failed to store the token recipient")
	}
	return nil
}

// TokenRecipient is the field office's registered recipient, "" if none.
func (b *Broker) TokenRecipient(ctx context.Context) (string, error) {
	var r string
	err := b.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		r, err = tx.Meta(metaTokenRecipient)
		if errors.Is(err, storage.ErrNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		return "", errorf(Unavailable, err, "failed to read the token recipient")
	}
	return r, nil
}

// tokenRecipientFor decides where op's new tokens go. The host operator
// names any recipient. An API caller names none (the field office's is
// used) or one of the registered ones: the field office's, or own (the
// user's registered recipient, for a reissue).
func (b *Broker) tokenRecipientFor(ctx context.Context, op Operator, asked, own string) (string, error) {
	if op.host() {
		if _, err := crypto.ParseRecipient(asked); err != nil {
			return "", errorf(Invalid, nil, "the tokens are encrypted to an age recipient (the field office's or the user's): %v", err)
		}
		return asked, nil
	}
	office, err := b.TokenRecipient(ctx)
	if err != nil {
		return "", err
	}
	switch {
	case asked == "" && office != "":
		return office, nil
	case asked == "" && own != "":
		return own, nil
	case asked == "":
		return "", &Error{Kind: Conflict, Code: "no_token_recipient",
			Msg: "no field-office recipient is registered for tokens: the host operator registers it with censusvault user token-recipient age1… --data DIR"}
	}
	if r, err := crypto.ParseRecipient(asked); err == nil && (r == office || r == own) {
		return r, nil
	}
	return "", &Error{Kind: Permission, Code: "recipient_not_registered",
		Msg: fmt.Sprintf("tokens made over the API go only to the field office's registered recipient%s, never to one named in the request", map[bool]string{true: " or the user's own", false: ""}[own != ""])}
}
