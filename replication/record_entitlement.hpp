// What a received change record may change here, given who sent it and over what.
//
// User tables are every member's to write. hdbrepl's own tables decide who is trusted
// (users authorise certificate exchanges; membership rows carry the URLs this node dials and
// the CAs it trusts; removals ban nodes), so their changes are kept only where the link is
// entitled to them:
//
//   link                               hdbrepl_members        hdbrepl_removals     hdbrepl_users
//   secure port, certificate verified  any row                any row              any row
//   plain port (address-trusted)       only the row named     only a removal made  none (*)
//                                      after the record's     by the record's
//                                      origin; its CA is      origin (removed_by),
//                                      dropped                never of this node;
//                                                             no take-backs
//
// (*) Users authorise certificate exchanges, which only the secure port serves: a node that
// serves no secure port takes user changes from the plain port too (so users still replicate
// through a cluster of plain-port nodes), a node that serves one never does (or address trust
// would buy a signed certificate).
//
// Table DDL (create, drop, rename) of an hdbrepl table is never kept, from any link: those
// tables are made the same way by every node and never change shape.
//
// A record that loses changes here comes out trimmed (engine/txn_record.hpp; one that only
// loses a CA keeps every change and is not), as one that
// a subscription filtered: it is never relayed as the origin's whole transaction.
// Pure; thread: the caller's (the node's db thread).
#pragma once
#include <string>

#include "engine/bytes.hpp"

namespace hdbrepl::ext {

struct record_verdict {
    bool rewritten = false;  // changes were left out or altered: apply `record`, not the input
    engine::bytes record;    // when rewritten: the record to apply (empty: nothing of it is left)
    std::size_t refused = 0; // changes left out
    std::string reason;      // why the first of them was left out ("" when none was)
};

// `secure`: the record arrived on a mutually authenticated TLS link. `self`: this node's name.
// `plain_users`: user changes are accepted from the plain port (this node serves no secure port).
// A record that does not decode, or that needs no change, is not rewritten (and not copied:
// this runs for every received record); the applier refuses an undecodable one itself.
record_verdict entitled_changes(const engine::bytes& record, bool secure, const std::string& self, bool plain_users);

} // namespace hdbrepl::ext
