// Assembly of a fragmented message (see fragments.hpp).
#include "replication/fragments.hpp"

namespace hdbrepl::engine {

std::string fragment_assembler::add(const wire::fragment& f, std::uint64_t cap) {
    auto refuse = [&](std::string why) {
        reset();
        return why;
    };
    const std::string declares = "fragment declaring " + std::to_string(f.total) + " bytes";
    if (f.data.empty() || f.data.size() > f.total) return refuse(declares + " carries " + std::to_string(f.data.size()));
    if (!active()) {
        if (f.total > cap) return refuse(declares + ": over the limit of " + std::to_string(cap) + " bytes");
        if (f.total <= min_frame_bytes || f.data.size() == f.total)
            return refuse(declares + ": a message that fits a frame is sent whole");
        const auto type = static_cast<wire::msg>(f.data[0]);
        if (type == wire::msg::fragment || type == wire::msg::fragment_ack) return refuse(declares + ": a fragment inside a fragmented message");
        total_ = f.total;
        buf_.reserve(static_cast<std::size_t>(total_));
    } else if (f.total != total_) {
        return refuse(declares + " in a message of " + std::to_string(total_) + " bytes");
    }
    if (f.data.size() > total_ - buf_.size())
        return refuse(declares + " runs past its end: " + std::to_string(buf_.size()) + " + " + std::to_string(f.data.size()) + " bytes");
    buf_.insert(buf_.end(), f.data.begin(), f.data.end());
    return {};
}

bytes fragment_assembler::take() {
    bytes out = std::move(buf_);
    reset();
    return out;
}

void fragment_assembler::reset() {
    bytes().swap(buf_);
    total_ = 0;
}

} // namespace hdbrepl::engine
