// Registration of SQL function tables (see fn_table.hpp).
#include "sql/fn_table.hpp"

namespace hdbrepl::sql {

int register_functions(sqlite3* db, std::span<const function_entry> table, void* user_data, void (*destroy)(void*)) {
    for (std::size_t i = 0; i < table.size(); ++i) {
        const auto& f = table[i];
        const bool last = i + 1 == table.size();
        // SQLite calls the destructor itself when this call fails.
        int rc = sqlite3_create_function_v2(db, f.name, f.n_arg, function_flags(f.kind), user_data, f.callback, nullptr, nullptr,
                                            last ? destroy : nullptr);
        if (rc != SQLITE_OK) {
            if (!last && destroy) destroy(user_data);
            return rc;
        }
    }
    if (table.empty() && destroy) destroy(user_data);
    return SQLITE_OK;
}

} // namespace hdbrepl::sql
