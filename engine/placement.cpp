// Row placement: SipHash-2-4, rendezvous hashing, residency parsing (the JSON is read by
// engine/json; here only its errors are worded), shard rules. See placement.hpp for the
// design. Pure; any thread.
#include "engine/placement.hpp"

#include "engine/json.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace hdbrepl::engine {

namespace {

// ---- SipHash-2-4, streaming ------------------------------------------------------------
// State and rounds as in the reference implementation (github.com/veorq/SipHash); input is
// consumed in 8-byte little-endian words assembled byte by byte, so no load depends on the
// host's endianness or alignment.

constexpr std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

class siphash_state {
public:
    siphash_state(std::uint64_t k0, std::uint64_t k1)
        : v0_(k0 ^ 0x736f6d6570736575ULL), v1_(k1 ^ 0x646f72616e646f6dULL),
          v2_(k0 ^ 0x6c7967656e657261ULL), v3_(k1 ^ 0x7465646279746573ULL) {}

    void update(const std::uint8_t* p, std::size_t n) {
        total_ += n;
        while (n > 0) {
            word_ |= static_cast<std::uint64_t>(*p++) << (8 * filled_);
            --n;
            if (++filled_ == 8) {
                compress(word_);
                word_ = 0;
                filled_ = 0;
            }
        }
    }
    void update(std::span<const std::uint8_t> s) { update(s.data(), s.size()); }

    std::uint64_t finish() {
        // Last word: the remaining bytes, and the total length mod 256 in the top byte.
        compress(word_ | (static_cast<std::uint64_t>(total_ & 0xff) << 56));
        v2_ ^= 0xff;
        for (int i = 0; i < 4; ++i) round();
        return v0_ ^ v1_ ^ v2_ ^ v3_;
    }

private:
    void round() {
        v0_ += v1_; v1_ = rotl(v1_, 13); v1_ ^= v0_; v0_ = rotl(v0_, 32);
        v2_ += v3_; v3_ = rotl(v3_, 16); v3_ ^= v2_;
        v0_ += v3_; v3_ = rotl(v3_, 21); v3_ ^= v0_;
        v2_ += v1_; v1_ = rotl(v1_, 17); v1_ ^= v2_; v2_ = rotl(v2_, 32);
    }
    void compress(std::uint64_t m) {
        v3_ ^= m;
        round();
        round();
        v0_ ^= m;
    }

    std::uint64_t v0_, v1_, v2_, v3_;
    std::uint64_t word_ = 0;
    unsigned filled_ = 0;
    std::uint64_t total_ = 0;
};

// The placement hash key: the 16 ASCII bytes "hdbrepl-place-v1", read little-endian.
constexpr std::uint64_t load_le(const char* s) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
    return v;
}
constexpr const char placement_hash_key[] = "hdbrepl-place-v1";
static_assert(sizeof placement_hash_key == 17);
constexpr std::uint64_t place_k0 = load_le(placement_hash_key);
constexpr std::uint64_t place_k1 = load_le(placement_hash_key + 8);

// ---- residency node lists: the message for each way a JSON array of names can be wrong ----

residency residency_failure(std::string_view text, const json::string_array_error& e) {
    using k = json::string_array_error;
    const char* what = "not valid JSON";
    bool with_offset = true;
    switch (e.kind) {
    case k::not_array: what = "expected a shard number (INTEGER 0..65535) or a JSON array of node names"; break;
    case k::empty_array: what = "the node list is empty"; with_offset = false; break;
    case k::empty_string: what = "empty node name"; break;
    case k::not_string: what = "expected a string (node name)"; break;
    case k::expected_comma_or_end: what = "expected ',' or ']'"; break;
    case k::trailing_text: what = "unexpected text after the array"; break;
    case k::unterminated_string: what = "unterminated string"; break;
    case k::control_character: what = "control character in string (must be escaped)"; break;
    case k::invalid_utf8: what = "invalid UTF-8"; break;
    case k::invalid_escape: what = "invalid escape"; break;
    case k::bad_hex_digit: what = "expected 4 hex digits after \\u"; break;
    case k::unpaired_surrogate: what = "unpaired surrogate in \\u escape"; break;
    case k::none:
    case k::other: break;
    }
    std::string m = "residency: ";
    m += what;
    if (e.kind == k::other && !e.detail.empty()) m += " (" + e.detail + ")";
    if (with_offset) m += e.offset < text.size() ? " at offset " + std::to_string(e.offset) : std::string(" at end of text");
    return residency(std::in_place_index<residency_error>, std::move(m));
}

} // namespace

// ---- hashing --------------------------------------------------------------------------

std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, std::span<const std::uint8_t> data) {
    siphash_state h(k0, k1);
    h.update(data);
    return h.finish();
}

std::uint64_t rendezvous_score(std::string_view node_name, std::span<const std::uint8_t> key) {
    siphash_state h(place_k0, place_k1);
    std::uint8_t len[8];
    std::uint64_t n = node_name.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(n >> (8 * i));
    h.update(len, sizeof len);
    h.update(as_byte_span(node_name));
    h.update(key);
    return h.finish();
}

bytes placement_key(const value& key) {
    bytes b;
    byte_writer w(b);
    encode_value(w, key);
    std::string norm = normalized_key(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    return bytes(norm.begin(), norm.end());
}

// ---- placement by count ---------------------------------------------------------------

std::vector<std::string> place_row(std::span<const std::uint8_t> key_bytes, const std::string& writer,
                                   const std::vector<std::string>& members, int replicate_to) {
    // The other members, once each.
    std::vector<std::string> others;
    others.reserve(members.size());
    for (const auto& m : members)
        if (m != writer) others.push_back(m);
    std::sort(others.begin(), others.end());
    others.erase(std::unique(others.begin(), others.end()), others.end());

    std::vector<std::string> out;
    if (replicate_to < 0 || static_cast<std::size_t>(replicate_to) >= others.size()) {
        out = std::move(others);
    } else if (replicate_to > 0) {
        std::vector<std::pair<std::uint64_t, const std::string*>> scored;
        scored.reserve(others.size());
        for (const auto& m : others) scored.emplace_back(rendezvous_score(m, key_bytes), &m);
        auto nth = scored.begin() + replicate_to;
        std::partial_sort(scored.begin(), nth, scored.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first > b.first : *a.second < *b.second;
        });
        for (auto it = scored.begin(); it != nth; ++it) out.push_back(*it->second);
        std::sort(out.begin(), out.end());
    }
    out.insert(std::lower_bound(out.begin(), out.end(), writer), writer);
    return out;
}

std::vector<std::string> place_row(const value& key, const std::string& writer,
                                   const std::vector<std::string>& members, int replicate_to) {
    return place_row(placement_key(key), writer, members, replicate_to);
}

placement make_placement(std::vector<std::string> nodes) {
    std::sort(nodes.begin(), nodes.end());
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    return placement{std::move(nodes)};
}

placement place_write(const std::optional<placement>& previous, std::span<const std::uint8_t> key_bytes,
                      const std::string& writer, const std::vector<std::string>& members, int replicate_to) {
    if (previous) return *previous;
    return placement{place_row(key_bytes, writer, members, replicate_to)};
}

bool node_holds(const placement& p, std::string_view node) {
    return std::binary_search(p.nodes.begin(), p.nodes.end(), node, std::less<>{});
}

std::vector<std::string> receivers(const placement& p, std::string_view self) {
    std::vector<std::string> out;
    out.reserve(p.nodes.size());
    for (const auto& n : p.nodes)
        if (n != self) out.push_back(n);
    return out;
}

// ---- residency ------------------------------------------------------------------------

residency parse_residency(std::string_view sql_value_text, bool is_integer, std::int64_t integer_value) {
    if (is_integer) {
        if (integer_value < 0 || integer_value > max_shard)
            return residency(std::in_place_index<residency_error>,
                             "residency: shard " + std::to_string(integer_value) + " is out of range 0..65535");
        return residency(std::in_place_index<residency_shard>, static_cast<int>(integer_value));
    }
    if (sql_value_text.empty())
        return residency(std::in_place_index<residency_error>,
                         std::string("residency: expected a shard number (0..65535) or a JSON array of node names, got empty text"));
    std::vector<std::string> names;
    json::string_array_error e;
    if (!json::parse_string_array(sql_value_text, names, e)) return residency_failure(sql_value_text, e);
    return residency(std::in_place_index<residency_nodes>, std::move(names));
}

std::vector<std::string> shard_nodes(int shard, const std::vector<member_shard>& members) {
    std::vector<std::string> out;
    for (const auto& m : members)
        if (m.shard >= 0 && m.shard == shard) out.push_back(m.name);
    return make_placement(std::move(out)).nodes;
}

// ---- static shards -------------------------------------------------------------------

bool same_shard(int a, int b) {
    if (a < 0) a = -1;
    if (b < 0) b = -1;
    return a == b;
}

bool replicates_with(bool database_sharded, int my_shard, int peer_shard) {
    return !database_sharded || same_shard(my_shard, peer_shard);
}

} // namespace hdbrepl::engine
