// In-memory change list of an open transaction (see pending_txn.hpp).
#include "engine/pending_txn.hpp"

#include <string_view>
#include <unordered_map>

namespace hdbrepl::engine {

std::uint32_t pending_txn::table_slot(std::string_view schema, std::string_view name, std::string_view definition) {
    for (std::uint32_t i = 0; i < slots_.size(); ++i)
        if (slots_[i].schema == schema && slots_[i].name == name) {
            slots_[i].definition = definition;
            return i;
        }
    slots_.push_back({std::string(schema), std::string(name), std::string(definition)});
    return static_cast<std::uint32_t>(slots_.size() - 1);
}

void pending_txn::add(std::uint32_t slot, change_op op, std::size_t start, std::size_t key_start, std::size_t key_end) {
    entries_.push_back({slot, op, static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(buf_.size()),
                        static_cast<std::uint32_t>(key_start), static_cast<std::uint32_t>(key_end)});
}

void pending_txn::add_ddl(std::uint32_t slot, change_op op, std::size_t start) {
    entries_.push_back({slot, op, static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(buf_.size()), 0, 0});
}

void pending_txn::savepoint(int level) {
    if (level < 0) return;
    auto l = static_cast<std::size_t>(level);
    // Levels below `level` that we never saw were opened before this transaction had
    // changes; they mark the empty state.
    while (marks_.size() <= l) marks_.push_back(marks_.size() < l ? 0 : entries_.size());
}

void pending_txn::release(int level) {
    if (level < 0) return;
    if (static_cast<std::size_t>(level) < marks_.size()) marks_.resize(static_cast<std::size_t>(level));
}

void pending_txn::rollback_to(int level) {
    if (level < 0) {
        // SQLite's "-1": the savepoint that opened the transaction; everything goes.
        entries_.clear();
        buf_.clear();
        marks_.clear();
        return;
    }
    auto l = static_cast<std::size_t>(level);
    std::size_t keep = l < marks_.size() ? marks_[l] : 0;
    if (keep < entries_.size()) {
        buf_.resize(entries_[keep].start);
        entries_.resize(keep);
    }
    // The savepoint stays open after ROLLBACK TO.
    if (l < marks_.size()) marks_.resize(l + 1);
    else savepoint(level);
}

void pending_txn::clear() {
    slots_.clear();
    entries_.clear();
    marks_.clear();
    buf_.clear();
    may_repeat_keys_ = false;
}

std::vector<std::string> pending_txn::schemas() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) {
        const auto& s = slots_[e.slot].schema;
        bool seen = false;
        for (const auto& o : out) seen = seen || o == s;
        if (!seen) out.push_back(s);
    }
    return out;
}

std::vector<std::string> pending_txn::tables_in(std::string_view schema) const {
    std::vector<std::string> out;
    for (const auto& s : slots_)
        if (s.schema == schema) out.push_back(s.name);
    return out;
}

bytes pending_txn::build_record(std::string_view schema, hlc_t hlc, std::string_view origin,
                                const std::function<bool(const std::string& table)>& keep_table, record_placer* placer) const {
    // Keep each (table, key)'s last change only, when keys may repeat.
    std::vector<bool> keep(entries_.size(), true);
    if (may_repeat_keys_) {
        std::vector<std::unordered_map<std::string, std::size_t>> per_slot(slots_.size());
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            const auto& e = entries_[i];
            if (e.op != change_op::put && e.op != change_op::del) continue; // DDL is never merged
            std::string_view key(reinterpret_cast<const char*>(buf_.data()) + e.key_start, e.key_end - e.key_start);
            auto [it, inserted] = per_slot[e.slot].emplace(normalized_key(key), i);
            if (!inserted) {
                keep[it->second] = false;
                it->second = i;
            }
        }
    }
    std::vector<record_table> tables;
    std::vector<std::int64_t> remap(slots_.size(), -1);
    std::size_t count = 0;
    std::vector<int> slot_kept(slots_.size(), -1); // -1 unknown, 0 rejected, 1 kept
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const auto& e = entries_[i];
        if (!keep[i] || slots_[e.slot].schema != schema) { keep[i] = false; continue; }
        if (slot_kept[e.slot] < 0) slot_kept[e.slot] = !keep_table || keep_table(slots_[e.slot].name) ? 1 : 0;
        if (!slot_kept[e.slot]) { keep[i] = false; continue; }
        ++count;
        if (remap[e.slot] < 0) {
            remap[e.slot] = static_cast<std::int64_t>(tables.size());
            tables.push_back({slots_[e.slot].name, slots_[e.slot].definition});
        }
    }
    bytes out;
    if (count == 0) return out;
    std::vector<std::int32_t> placed;
    bool any_placed = false;
    if (placer) {
        placed.reserve(count);
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            const auto& e = entries_[i];
            if (!keep[i]) continue;
            std::int32_t p = -1;
            if (e.op == change_op::put || e.op == change_op::del)
                p = placer->place(slots_[e.slot].name, e.op,
                                  std::string_view(reinterpret_cast<const char*>(buf_.data()) + e.key_start, e.key_end - e.key_start));
            any_placed = any_placed || p >= 0;
            placed.push_back(p);
        }
    }
    out.reserve(buf_.size() + 64 + 3 * count);
    byte_writer w(out);
    encode_record_head(w, hlc, origin, tables, false, any_placed);
    w.put_varint(count);
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const auto& e = entries_[i];
        if (!keep[i]) continue;
        w.put_varint(static_cast<std::uint64_t>(remap[e.slot]));
        w.put_u8(static_cast<std::uint8_t>(e.op));
        w.put_raw(buf_.data() + e.start, e.end - e.start);
    }
    if (any_placed) encode_placements(w, placer->lists(), placed);
    return out;
}

} // namespace hdbrepl::engine
