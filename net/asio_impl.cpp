// The one translation unit that compiles Asio and Beast (separate compilation): every other
// net/*.cpp includes only their declarations, so the heavy code is built once.
// Configuration macros come from runtime_state.hpp, shared with the other net TUs.
#include "net/runtime_state.hpp"

#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
