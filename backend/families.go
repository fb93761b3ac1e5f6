package backend

import (
	"bytes"
	"time"

	"github.com/google/uuid"
)

// Refresh-token families: the rules every backend applies the same way.
//
// A family is one login session: the token InsertRefreshToken stored (its
// first token; every backend writes FamilyID = JTI for it) and every token
// descended from it by rotation (FamilyID copied from the predecessor;
// the predecessor's ReplacedBy set to the successor). A row without a
// FamilyID (written by DiracX) is its own family's first token: its family
// id is its JTI (FamilyOf).
//
// Ages are measured from UUIDv7 timestamps to the backend's clock, to the
// millisecond (the precision of a UUIDv7), not to the second:
//   - a rotation happened at its successor's UUIDv7 time; a token rotated
//     less than RotationGrace ago is within the grace window (an age of
//     exactly RotationGrace is outside it);
//   - a family started at its id's UUIDv7 time; it has expired when it
//     started more than FamilyLifetime ago (an age of exactly
//     FamilyLifetime still rotates).

// FamilyOf returns the family id of a token: its FamilyID, or its own JTI
// when it has none (a row written by DiracX).
func FamilyOf(t RefreshToken) uuid.UUID {
	if t.FamilyID != uuid.Nil {
		return t.FamilyID
	}
	return t.JTI
}

// FamilyFollowable reports whether a replay of the revoked token t can be
// answered by revoking its family only: t was written by authdb (FamilyID
// set) or rotated by it (ReplacedBy set). A row DiracX rotated has neither,
// and its successors cannot be found: a replay of it revokes the subject
// whatever the ReuseScope.
func FamilyFollowable(t RefreshToken) bool {
	return t.FamilyID != uuid.Nil || t.ReplacedBy != uuid.Nil
}

// RotationBounds are the two thresholds a rotation compares JTIs with,
// fixed at the rotation's "now" (see Options.RotationBounds).
type RotationBounds struct {
	// Grace is the lowest successor JTI still within the grace window;
	// uuid.Nil when there is no grace window. A successor s is within it
	// when bytes.Compare(s, Grace) >= 0 (InGrace).
	Grace uuid.UUID
	// Family is the lowest family id still within the family lifetime;
	// uuid.Nil when families live for ever. A family f has expired when
	// bytes.Compare(f, Family) < 0 (Expired).
	Family uuid.UUID
}

// RotationBounds returns the thresholds of a rotation happening now (the
// clock, at millisecond precision). UUIDv7s compare bytewise in time order
// (and so do their 32-hex forms), so SQL backends compare the columns with
// these bounds directly.
func (o Options) RotationBounds() RotationBounds {
	now := o.Clock().UTC().Truncate(time.Millisecond)
	var r RotationBounds
	if o.RotationGrace > 0 {
		// age < grace  <=>  successor time >= now - grace + 1ms
		r.Grace = LowestUUIDv7(now.Add(-o.RotationGrace).Add(time.Millisecond))
	}
	if o.FamilyLifetime > 0 {
		// age > lifetime  <=>  family time < now - lifetime
		r.Family = LowestUUIDv7(now.Add(-o.FamilyLifetime))
	}
	return r
}

// InGrace reports whether a token whose successor is succ was rotated
// within the grace window. False when there is no window or no successor.
func (r RotationBounds) InGrace(succ uuid.UUID) bool {
	return r.Grace != uuid.Nil && succ != uuid.Nil && bytes.Compare(succ[:], r.Grace[:]) >= 0
}

// Expired reports whether the family family started more than the family
// lifetime ago. False when families live for ever.
func (r RotationBounds) Expired(family uuid.UUID) bool {
	return r.Family != uuid.Nil && bytes.Compare(family[:], r.Family[:]) < 0
}
