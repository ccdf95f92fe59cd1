// Encoding of sqlite3_value arguments into change-record values, with the column's type
// affinity applied first (the same conversions SQLite applies when it stores the value in
// the shadow table), so the log holds exactly what the table holds.
#pragma once
#include "engine/bytes.hpp"
#include "engine/sqlite_api.hpp"
#include "engine/table_def.hpp"

namespace hdbrepl::sql {

void encode_with_affinity(engine::byte_writer& w, sqlite3_value* v, engine::affinity aff);

} // namespace hdbrepl::sql
