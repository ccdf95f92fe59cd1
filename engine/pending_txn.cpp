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
    auto parts = build_records(schema, hlc, origin, keep_table, placer, SIZE_MAX);
    return parts.empty() ? bytes{} : std::move(parts.front());
}

std::vector<bytes> pending_txn::build_records(std::string_view schema, hlc_t hlc, std::string_view origin,
                                              const std::function<bool(const std::string& table)>& keep_table, record_placer* placer,
                                              std::size_t part_bytes) const {
    std::vector<bytes> out;
    for_each_record(schema, hlc, origin, keep_table, placer, part_bytes, [&](bytes&& b) {
        out.push_back(std::move(b));
        return true;
    });
    return out;
}

void pending_txn::for_each_record(std::string_view schema, hlc_t hlc, std::string_view origin,
                                  const std::function<bool(const std::string& table)>& keep_table, record_placer* placer,
                                  std::size_t part_bytes, const std::function<bool(bytes&&)>& sink) const {
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
    std::vector<int> slot_kept(slots_.size(), -1); // -1 unknown, 0 rejected, 1 kept
    std::vector<std::size_t> kept; // entry indexes, in order
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const auto& e = entries_[i];
        if (!keep[i] || slots_[e.slot].schema != schema) continue;
        if (slot_kept[e.slot] < 0) slot_kept[e.slot] = !keep_table || keep_table(slots_[e.slot].name) ? 1 : 0;
        if (slot_kept[e.slot]) kept.push_back(i);
    }
    if (kept.empty()) return;
    std::vector<std::int32_t> placed(kept.size(), -1);
    if (placer)
        for (std::size_t k = 0; k < kept.size(); ++k) {
            const auto& e = entries_[kept[k]];
            if (e.op == change_op::put || e.op == change_op::del)
                placed[k] = placer->place(slots_[e.slot].name, e.op,
                                          std::string_view(reinterpret_cast<const char*>(buf_.data()) + e.key_start, e.key_end - e.key_start));
        }
    // Where the parts end: a part takes changes while it stays within part_bytes (its tables'
    // definitions and a margin for the headers counted); a change larger than that is a part
    // of its own. One part: the record of the whole transaction, as before parts existed.
    std::vector<std::size_t> ends; // exclusive ends into `kept`
    {
        // The head (magic, format, hlc, origin, part index, counts) and the margin a frame
        // needs around the record (message type and sequence number).
        const std::size_t head = 64 + origin.size();
        std::size_t size = head;
        std::vector<bool> listed(slots_.size(), false);
        std::vector<std::uint32_t> listed_slots;
        for (std::size_t k = 0; k < kept.size(); ++k) {
            const auto& e = entries_[kept[k]];
            std::size_t cost = (e.end - e.start) + 16;
            if (!listed[e.slot]) cost += slots_[e.slot].name.size() + slots_[e.slot].definition.size() + 16;
            if (k > 0 && size + cost > part_bytes && (ends.empty() ? 0 : ends.back()) < k) {
                ends.push_back(k);
                size = head;
                for (auto sl : listed_slots) listed[sl] = false;
                listed_slots.clear();
                cost = (e.end - e.start) + 16 + slots_[e.slot].name.size() + slots_[e.slot].definition.size() + 16;
            }
            if (!listed[e.slot]) { listed[e.slot] = true; listed_slots.push_back(e.slot); }
            size += cost;
        }
        ends.push_back(kept.size());
    }
    const bool parts = ends.size() > 1;
    std::size_t begin = 0;
    for (std::size_t p = 0; p < ends.size(); ++p) {
        const std::size_t end = ends[p];
        std::vector<record_table> tables;
        std::vector<std::int64_t> remap(slots_.size(), -1);
        std::vector<std::int64_t> list_remap(placer ? placer->lists().size() : 0, -1);
        std::vector<std::vector<std::string>> lists;
        std::vector<std::int32_t> part_placed;
        bool any_placed = false;
        std::size_t payload = 0;
        for (std::size_t k = begin; k < end; ++k) {
            const auto& e = entries_[kept[k]];
            payload += e.end - e.start;
            if (remap[e.slot] < 0) {
                remap[e.slot] = static_cast<std::int64_t>(tables.size());
                tables.push_back({slots_[e.slot].name, slots_[e.slot].definition});
            }
            std::int32_t pl = placed[k];
            if (pl >= 0) {
                auto& m = list_remap[static_cast<std::size_t>(pl)];
                if (m < 0) {
                    m = static_cast<std::int64_t>(lists.size());
                    lists.push_back(placer->lists()[static_cast<std::size_t>(pl)]);
                }
                pl = static_cast<std::int32_t>(m);
                any_placed = true;
            }
            part_placed.push_back(pl);
        }
        bytes rec;
        rec.reserve(payload + 64 + 3 * (end - begin));
        byte_writer w(rec);
        encode_record_head(w, hlc, origin, tables, false, any_placed, {parts, static_cast<std::uint32_t>(p), parts && p + 1 == ends.size()});
        w.put_varint(end - begin);
        for (std::size_t k = begin; k < end; ++k) {
            const auto& e = entries_[kept[k]];
            w.put_varint(static_cast<std::uint64_t>(remap[e.slot]));
            w.put_u8(static_cast<std::uint8_t>(e.op));
            w.put_raw(buf_.data() + e.start, e.end - e.start);
        }
        if (any_placed) encode_placements(w, lists, part_placed);
        if (!sink(std::move(rec))) return;
        begin = end;
    }
}

} // namespace hdbrepl::engine
