// The mailbox: posts and deferred continuations. See mailbox.hpp for the design and invariants.
#include "mailbox.hpp"

#include "core.hpp"
#include "drive.hpp"

namespace uvrt::detail {

bool mailbox::post(posted* p) {
  std::lock_guard lock(mutex_);
  if (!accepting_) return false;
  p->next = nullptr;
  if (tail_) tail_->next = p;
  else head_ = p;
  tail_ = p;
  uv_async_send(&wakeup);
  return true;
}

void mailbox::on_wakeup(uv_async_t* handle) {
  core& c = *static_cast<core*>(handle->data);
  if (c.inherited()) return;  // the application turns an inherited loop in a forked child
  {
    callback_scope scope(c);
    c.mail_.serve_posts();
    c.mail_.resume_deferred();
  }
  // Outside the callback scope: the teardown may destroy stuck tasks here (request_turn).
  c.mail_.turn_requested_ = false;
  c.mail_.update_ref();
  c.progress();
}

void mailbox::request_turn() noexcept {
  turn_requested_ = true;
  update_ref();
  uv_async_send(&wakeup);
}

void mailbox::update_ref() noexcept {
  auto* h = reinterpret_cast<uv_handle_t*>(&wakeup);
  if (!deferred_.empty() || turn_requested_) uv_ref(h);
  else uv_unref(h);
}

void mailbox::serve_posts() noexcept {
  posted* p;
  {
    std::lock_guard lock(mutex_);
    p = std::exchange(head_, nullptr);
    tail_ = nullptr;
  }
  // A posted callable may fork: the child serves nothing more of the parent's (lifecycle.hpp).
  while (p && !core_.inherited()) {
    posted* next = p->next;
    p->run(p, &core_);
    p = next;
  }
}

void mailbox::close() noexcept {
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
  }
  callback_scope scope(core_);
  serve_posts();
}

void mailbox::make_room_to_defer(std::size_t more) {
  const std::size_t need = deferred_.size() + more;
  if (deferred_.capacity() >= need) return;
  deferred_.reserve(need > 2 * deferred_.size() + 8 ? need : 2 * deferred_.size() + 8);
}

void mailbox::defer(job_core* j) noexcept {
  j->refs.fetch_add(1, std::memory_order_relaxed);
  deferred_.push_back(j);
  if (deferred_.size() == 1) update_ref();
  uv_async_send(&wakeup);
}

// By index, since a continuation resumed here may defer another job (it is appended and resumed
// in the same pass), and cleared rather than swapped out, so the vector keeps the room
// make_room_to_defer made: a later abandon (shutdown's) relies on room made before this ran.
void mailbox::resume_deferred() noexcept {
  // A continuation may fork: the child resumes nothing more of the parent's (lifecycle.hpp).
  for (std::size_t i = 0; i < deferred_.size() && !core_.inherited(); ++i) {
    job_core* j = deferred_[i];
    if (continuation* k = std::exchange(j->cont, nullptr)) k->resume(k);
    j->vt->release(j);
  }
  deferred_.clear();
  update_ref();
}

}  // namespace uvrt::detail
