// libFuzzer target: the peer protocol decoder (replication/wire.cpp), including the hello
// handshake and the change records that txn messages carry.
// Invariants: decode never crashes; whatever decodes re-encodes to bytes that decode
// again to the same message, and never to more bytes than were read (compared through a second encoding, since the message
// structs have no operator==); a decoded txn's record decodes on its own; decoding a buffer it
// owns (the node's path for whole frames and assembled fragments) agrees with decoding a view.
#include "engine/txn_record.hpp"
#include "replication/wire.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace hdbrepl::engine;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string err;
    auto m = wire::decode(data, size, err);
    std::string err_owned;
    auto owned = wire::decode(bytes(data, data + size), err_owned);
    FUZZ_CHECK(owned.has_value() == m.has_value() && err_owned == err);
    if (owned) FUZZ_CHECK(wire::encode(*owned) == wire::encode(*m));
    if (!m) {
        FUZZ_CHECK(!err.empty());
        return 0;
    }
    FUZZ_CHECK(wire::name_of(*m) != nullptr);
    const bytes once = wire::encode(*m);
    FUZZ_CHECK(!once.empty() && once[0] == data[0]);
    // The encoder writes minimal varints, so it never needs more bytes than were accepted.
    FUZZ_CHECK(once.size() <= size);
    std::string err2;
    auto again = wire::decode(once.data(), once.size(), err2);
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(again->index() == m->index());
    FUZZ_CHECK(wire::encode(*again) == once);
    if (auto* t = std::get_if<wire::txn>(&*m)) {
        std::string e;
        auto rec = decode_record(t->record.data(), t->record.size(), e);
        FUZZ_CHECK(rec.has_value());
        FUZZ_CHECK(encode_record(*rec).size() <= t->record.size());
    }
    return 0;
}
