// The changes a connection has made in its open transaction, kept in memory until the
// transaction commits, then turned into one change-log record per schema (txn_record.hpp).
// Savepoints (including SQLite's statement savepoints) truncate the list, so a rolled-back
// statement or savepoint leaves nothing in the log. Pure: no SQLite types; callers encode
// row values straight into buffer() and then call add().
//
// Savepoint calls arrive once per participating virtual table, so every operation here is
// idempotent: a repeated savepoint(n) for a level that is already open is ignored.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/bytes.hpp"
#include "engine/hlc.hpp"
#include "engine/txn_record.hpp"

namespace hdbrepl::engine {

// Decides where the rows of a record live (replicateTo, per-transaction placement;
// connection_state's row placer). build_record asks it once per put and delete.
class record_placer {
public:
    virtual ~record_placer() = default;
    // The index into lists() of the nodes that store this row, or -1 (no placement).
    // `key` is the codec encoding of the row's key (for a delete, the whole payload).
    virtual std::int32_t place(const std::string& table, change_op op, std::string_view key) = 0;
    virtual const std::vector<std::vector<std::string>>& lists() const = 0;
};

class pending_txn {
public:
    // Registers a table that takes part in the transaction; returns its slot.
    std::uint32_t table_slot(std::string_view schema, std::string_view name, std::string_view definition);

    bytes& buffer() { return buf_; }
    // Records a change whose payload was encoded at buffer()[start, end). For puts, the key
    // value's encoding sits at [key_start, key_end) inside it.
    void add(std::uint32_t slot, change_op op, std::size_t start, std::size_t key_start, std::size_t key_end);
    // A change that may touch a key touched before in this transaction (update, delete,
    // replace): the record is then reduced to each key's last change.
    void note_overwrite() { may_repeat_keys_ = true; }
    // Records a DDL change of a table (create, drop, rename) made inside the transaction,
    // so it travels in the transaction's record; its payload is at buffer()[start, end).
    void add_ddl(std::uint32_t slot, change_op op, std::size_t start);

    void savepoint(int level);
    void release(int level);
    void rollback_to(int level);
    void clear();

    bool empty() const { return entries_.empty(); }
    std::size_t size() const { return entries_.size(); }
    // Schemas with changes, in first-use order.
    std::vector<std::string> schemas() const;
    // Tables of `schema` registered in this transaction.
    std::vector<std::string> tables_in(std::string_view schema) const;
    // The record body for one schema's changes (empty when it has none). `keep_table`
    // (when given) leaves out the changes of tables it rejects; `placer` (when given) places
    // rows, and the record is then a placed one if any row got a placement.
    bytes build_record(std::string_view schema, hlc_t hlc, std::string_view origin,
                       const std::function<bool(const std::string& table)>& keep_table = {},
                       record_placer* placer = nullptr) const;
    // The same, written as parts (txn_record.hpp, "Parts") once the record would pass
    // `part_bytes`: one record when it does not. The caller logs each, in order.
    std::vector<bytes> build_records(std::string_view schema, hlc_t hlc, std::string_view origin,
                                     const std::function<bool(const std::string& table)>& keep_table, record_placer* placer,
                                     std::size_t part_bytes = record_part_bytes) const;
    // The same, one record at a time: each goes to `sink` as soon as it is encoded (so only
    // one part is in memory besides the change list); `sink` returning false stops.
    void for_each_record(std::string_view schema, hlc_t hlc, std::string_view origin,
                         const std::function<bool(const std::string& table)>& keep_table, record_placer* placer, std::size_t part_bytes,
                         const std::function<bool(bytes&&)>& sink) const;

private:
    struct slot_info {
        std::string schema, name, definition;
    };
    struct entry {
        std::uint32_t slot;
        change_op op;
        std::uint32_t start, end, key_start, key_end;
    };
    std::vector<slot_info> slots_;
    std::vector<entry> entries_;
    std::vector<std::size_t> marks_; // marks_[level] = entries_.size() when savepoint `level` opened
    bytes buf_;
    bool may_repeat_keys_ = false;
};

} // namespace hdbrepl::engine
