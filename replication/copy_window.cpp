// The copy window (see copy_window.hpp for the rule).
#include "replication/copy_window.hpp"

#include <algorithm>
#include <cmath>

namespace hdbrepl::engine {

copy_window::copy_window(const limits& l) : lim_(l) {
    lim_.chunk_bytes = std::max<std::size_t>(1, lim_.chunk_bytes);
    lim_.max_bytes = std::max(lim_.max_bytes, lim_.chunk_bytes);
    lim_.max_chunks = std::max<std::size_t>(1, lim_.max_chunks);
    floor_ = std::min(4 * lim_.chunk_bytes, lim_.max_bytes);
    window_ = std::min(8 * lim_.chunk_bytes, lim_.max_bytes);
}

void copy_window::sent(std::size_t bytes, std::size_t charge, std::int64_t t_us) {
    chunks_.push_back({bytes, charge, t_us, delivered_});
    in_flight_ += bytes;
    charge_in_flight_ += charge;
    ++sent_count_;
}

bool copy_window::may_send() const {
    if (chunks_.empty()) return true;
    return chunks_.size() < lim_.max_chunks && in_flight_ + lim_.chunk_bytes <= window_ &&
           charge_in_flight_ + lim_.chunk_charge <= lim_.max_charge;
}

double copy_window::rate_bytes_per_s() const {
    return *std::max_element(round_max_.begin(), round_max_.end());
}

std::size_t copy_window::target() const {
    if (min_rtt_us_ < 0) return window_;
    const double bdp = rate_bytes_per_s() * static_cast<double>(min_rtt_us_) / 1e6;
    const double want = gain * bdp;
    if (!(want < static_cast<double>(lim_.max_bytes))) return lim_.max_bytes; // also NaN
    return std::max(floor_, static_cast<std::size_t>(want));
}

void copy_window::end_round() {
    const double rate = rate_bytes_per_s();
    if (starting_) {
        // Growth stalls when the pipe is full: three rounds without a quarter more.
        if (rate >= 1.25 * full_rate_) {
            full_rate_ = rate;
            flat_rounds_ = 0;
        } else if (++flat_rounds_ >= 3) {
            starting_ = false;
        }
    }
    round_ = (round_ + 1) % rate_rounds;
    round_max_[static_cast<std::size_t>(round_)] = 0;
    round_end_ = sent_count_;
}

void copy_window::acked(std::uint64_t chunks, std::int64_t t_us) {
    chunks = std::min(chunks, sent_count_);
    if (chunks <= acked_count_) return;
    std::size_t newly = 0;
    chunk newest;
    while (acked_count_ < chunks) {
        newest = chunks_.front();
        chunks_.pop_front();
        in_flight_ -= newest.bytes;
        charge_in_flight_ -= newest.charge;
        newly += newest.bytes;
        ++acked_count_;
    }
    delivered_ += newly;
    // Samples from the newest chunk acked: the older ones of a cumulative ack waited for it.
    // A clock that did not advance (or went back) gives no sample and divides by nothing.
    const std::int64_t rtt = t_us - newest.t_sent;
    if (rtt > 0) {
        min_rtt_us_ = min_rtt_us_ < 0 ? rtt : std::min(min_rtt_us_, rtt);
        const double rate = static_cast<double>(delivered_ - newest.delivered_at_send) * 1e6 / static_cast<double>(rtt);
        auto& m = round_max_[static_cast<std::size_t>(round_)];
        m = std::max(m, rate);
    }
    if (acked_count_ >= round_end_) end_round();
    if (starting_)
        window_ = std::min(lim_.max_bytes, window_ + newly);
    else
        window_ = target();
}

} // namespace hdbrepl::engine
