#include "sidecar/codec/http1/http1_reader.h"

#include <cstring>

#include "sidecar/codec/header_stock.h"

namespace mulligan::proxy {

namespace {
Http1Reader* self(llhttp_t* p) { return static_cast<Http1Reader*>(p->data); }

// The methods llhttp is shown as they are; any other token is shown to it
// as "GET" (see Http1Reader::method_done_).
bool llhttpKnowsMethod(std::string_view m) {
  switch (m.size()) {
    case 3:
      return m == "GET" || m == "PUT";
    case 4:
      return m == "POST" || m == "HEAD";
    case 5:
      return m == "PATCH" || m == "TRACE";
    case 6:
      return m == "DELETE";
    case 7:
      return m == "OPTIONS" || m == "CONNECT";
    default:
      return false;
  }
}

// rawHeadBytes' answer, for the head being delivered on this thread.
thread_local const MessageHead* t_raw_head = nullptr;
thread_local std::string_view t_raw_bytes;

// Sets rawHeadBytes' answer for one onHead call (nested readers restore it).
class RawHeadScope {
 public:
  RawHeadScope(const MessageHead* head, std::string_view bytes) : head_(t_raw_head), bytes_(t_raw_bytes) {
    t_raw_head = head;
    t_raw_bytes = bytes;
  }
  ~RawHeadScope() {
    t_raw_head = head_;
    t_raw_bytes = bytes_;
  }
  RawHeadScope(const RawHeadScope&) = delete;
  RawHeadScope& operator=(const RawHeadScope&) = delete;

 private:
  const MessageHead* head_;
  std::string_view bytes_;
};
}  // namespace

std::string_view rawHeadBytes(const MessageHead& head) {
  return &head == t_raw_head ? t_raw_bytes : std::string_view();
}

// One set of callbacks for every reader (llhttp keeps a pointer to it):
// readers are made per connection and reset per upstream request, so it is
// not filled in each time.
const llhttp_settings_t* Http1Reader::settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_message_begin = &Http1Reader::onMessageBegin;
    st.on_url = &Http1Reader::onUrl;
    st.on_version = &Http1Reader::onVersion;
    st.on_status = &Http1Reader::onStatus;
    st.on_header_field = &Http1Reader::onHeaderField;
    st.on_header_value = &Http1Reader::onHeaderValue;
    st.on_header_value_complete = &Http1Reader::onHeaderValueComplete;
    st.on_headers_complete = &Http1Reader::onHeadersComplete;
    st.on_body = &Http1Reader::onBody;
    st.on_message_complete = &Http1Reader::onMessageComplete;
    st.on_chunk_header = &Http1Reader::onChunkHeader;
    return st;
  }();
  return &settings;
}

Http1Reader::Http1Reader(Mode mode, Handler* handler, Limits limits)
    : mode_(mode), handler_(handler), limits_(limits) {
  llhttp_init(&parser_, mode == Mode::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, settings());
  parser_.data = this;
}

void Http1Reader::reset(Handler* handler) {
  handler_ = handler;
  llhttp_init(&parser_, mode_ == Mode::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, settings());
  parser_.data = this;
  // Every field as a new reader has it (the header file's defaults).
  in_headers_ = true;
  in_message_ = false;
  last_was_value_ = false;
  msg_start_ = last_value_end_ = feed_end_ = feed_begin_ = nullptr;
  value_complete_ = false;
  prev_nonblank_ = 0;
  head_request_ = false;
  header_bytes_ = 0;
  method_done_ = false;
  llhttp_method_len_ = 0;
  exec_base_ = 0;
  exec_begin_ = nullptr;
  url_at_ = UINT64_MAX;
  url_len_ = 0;
  version_seen_ = false;
  scan_head_ = false;
  start_line_seen_ = false;
  line_len_ = 0;
  last_byte_ = 0;
  last_chunk_ = false;
  interim_done_ = false;
  host_field_ = expect_field_ = kNoField;
  user_error_ = Error::kNone;
  user_why_.clear();
}

void Http1Reader::expectResponseTo(std::string_view method) { head_request_ = method == "HEAD"; }

int Http1Reader::headerBytesTooMany() {
  user_error_ = Error::kHeadersTooLarge;
  user_why_ = "header section larger than " + std::to_string(limits_.max_header_bytes) + " bytes";
  return -1;
}

Http1Reader::~Http1Reader() {
  HeaderStock& stock = HeaderStock::local();
  stock.give(std::move(head_.headers));
  stock.give(std::move(trailers_));
  stock.giveString(std::move(head_.target));
  stock.giveString(std::move(head_.reason));
}

int Http1Reader::onMessageBegin(llhttp_t* p) {
  // A request began when feed() met its method's first byte.
  if (self(p)->mode_ == Mode::kResponse) self(p)->beginMessage();
  return 0;
}

void Http1Reader::beginMessage() {
  // A fresh head, field by field (every field of MessageHead): building a
  // whole MessageHead to move-assign costs more. What the last message left
  // is emptied and keeps its storage; what its owner moved out (a request's
  // fields and target go to the RequestHead) starts from the thread's stock:
  // no malloc per message once warm (STYLE.md "Hot path").
  MessageHead& h = head_;
  if (h.headers.capacity() != 0) {
    h.headers.clear();
  } else {
    h.headers = HeaderStock::local().takeList();
  }
  trailers_.clear();
  h.method.clear();
  h.target.clear();
  h.reason.clear();
  h.status = 0;
  h.version_minor = 1;
  h.keep_alive = true;
  h.chunked = h.has_content_length = h.upgrade = h.needs_eof = false;
  h.content_length = 0;
  in_headers_ = true;
  in_message_ = true;
  last_was_value_ = false;
  value_complete_ = false;
  header_bytes_ = 0;
  method_done_ = false;
  llhttp_method_len_ = 0;
  exec_base_ = 0;
  url_at_ = UINT64_MAX;
  url_len_ = 0;
  version_seen_ = false;
  if (mode_ == Mode::kRequest) {
    // The line check starts at the method (a response's starts in feed():
    // llhttp begins a response inside the execute the check ran before).
    scan_head_ = true;
    start_line_seen_ = false;
    line_len_ = 0;
    last_byte_ = 0;
  }
}

int Http1Reader::onUrl(llhttp_t* p, const char* at, size_t len) {
  Http1Reader* r = self(p);
  if (r->url_at_ == UINT64_MAX) {
    // RFC 9112 §3: method SP request-target — one space. llhttp skips
    // more; a peer that does not reads another target.
    r->url_at_ = r->exec_base_ + static_cast<uint64_t>(at - r->exec_begin_);
    if (r->url_at_ != r->llhttp_method_len_ + 1) return r->refuse("more than one space after the method");
  }
  r->url_len_ += len;
  // RFC 9112 §3.2: no fragment in a request-target (HAProxy refuses it too).
  if (std::memchr(at, '#', len) != nullptr) return r->refuse("'#' in the request target");
  HeaderStock::append(r->head_.target, at, len);
  return r->addHeaderBytes(len);
}

int Http1Reader::onVersion(llhttp_t* p, const char* at, size_t len) {
  Http1Reader* r = self(p);
  if (r->mode_ == Mode::kRequest && !r->version_seen_) {
    // request-target SP HTTP-version: one space before "HTTP/".
    uint64_t at_off = r->exec_base_ + static_cast<uint64_t>(at - r->exec_begin_);
    if (r->url_at_ == UINT64_MAX || at_off != r->url_at_ + r->url_len_ + 6) {
      return r->refuse("more than one space before the HTTP version");
    }
  }
  r->version_seen_ = true;
  return r->addHeaderBytes(len);
}

int Http1Reader::onStatus(llhttp_t* p, const char* at, size_t len) {
  Http1Reader* r = self(p);
  // RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
  for (size_t i = 0; i < len; ++i) {
    unsigned char c = static_cast<unsigned char>(at[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return r->refuse("control byte in the reason phrase");
  }
  HeaderStock::append(r->head_.reason, at, len);
  return r->addHeaderBytes(len);
}

int Http1Reader::onHeaderField(llhttp_t* p, const char* at, size_t len) {
  Http1Reader* r = self(p);
  HeaderList& list = r->in_headers_ ? r->head_.headers : r->trailers_;
  // llhttp may split a name or value across calls; a new pair starts when a
  // name follows a value.
  if (list.empty() || r->last_was_value_) {
    if (list.size() >= r->limits_.max_headers) {
      r->user_error_ = Error::kHeadersTooLarge;
      r->user_why_ = "more than " + std::to_string(r->limits_.max_headers) + " header fields";
      return -1;
    }
    list.startField();
  }
  // RFC 9110 §5.1: a field name is a token. llhttp refuses every other byte
  // but the space (http1_reader_test proves it, byte by byte, on the llhttp
  // we build with), so the space is all that is left to look for — in a
  // trailer section too: a trailer is forwarded like a header, and a name
  // with a space in it is one a lenient peer may read differently.
  if (std::string_view(at, len).find(' ') != std::string_view::npos) {
    r->user_error_ = Error::kBadMessage;
    r->user_why_ = std::string(r->in_headers_ ? "invalid header name \"" : "invalid trailer name \"") +
                   std::string(list.back().first) + std::string(at, len) + "\"";
    return -1;
  }
  list.appendToName(std::string_view(at, len));
  r->last_was_value_ = false;
  r->value_complete_ = false;
  return r->addHeaderBytes(len);
}

int Http1Reader::onHeaderValue(llhttp_t* p, const char* at, size_t len) {
  Http1Reader* r = self(p);
  HeaderList& list = r->in_headers_ ? r->head_.headers : r->trailers_;
  if (list.empty()) return -1;
  // llhttp joins an obs-fold line to the previous value (no value_complete
  // in between), so look at the bytes before this piece: a line break right
  // before it (or before its leading blank) is a fold.
  bool folded = false;
  if (!list.back().second.empty()) {
    const char* q = at;
    while (q > r->feed_begin_ && (q[-1] == ' ' || q[-1] == '\t')) --q;
    char before = q > r->feed_begin_ ? q[-1] : r->prev_nonblank_;
    folded = before == '\n';
  }
  if (r->value_complete_ || folded) {
    // llhttp accepts obs-fold as a continuation of the previous value; a
    // proxy must not (RFC 9112 §5.2): reject with 400.
    r->user_error_ = Error::kBadMessage;
    r->user_why_ = "obsolete line folding in header \"" + std::string(list.back().first) + "\"";
    return -1;
  }
  list.appendToValue(std::string_view(at, len));
  r->last_was_value_ = true;
  r->last_value_end_ = at + len;
  return r->addHeaderBytes(len);
}

int Http1Reader::onHeaderValueComplete(llhttp_t* p) {
  self(p)->value_complete_ = true;
  return 0;
}

int Http1Reader::onHeadersComplete(llhttp_t* p) {
  Http1Reader* r = self(p);
  MessageHead& h = r->head_;
  h.version_minor = p->http_minor;
  if (r->mode_ == Mode::kResponse) h.status = p->status_code;
  if (r->checkHead(p) != 0) return -1;
  h.chunked = (p->flags & F_CHUNKED) != 0;
  h.has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
  h.content_length = h.has_content_length ? p->content_length : 0;
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  h.upgrade = p->upgrade != 0;
  h.needs_eof = r->mode_ == Mode::kResponse && llhttp_message_needs_eof(p) != 0;
  r->in_headers_ = false;
  // A response head that arrived whole in this feed: its bytes, from the
  // status line to the blank line after the last field (OWS after the last
  // value allowed), for rawHeadBytes during the handler's onHead.
  std::string_view raw;
  if (r->mode_ == Mode::kResponse && r->msg_start_ != nullptr && r->last_value_end_ != nullptr &&
      r->last_value_end_ > r->msg_start_ && r->last_value_end_ <= r->feed_end_) {
    const char* q = r->last_value_end_;
    while (q < r->feed_end_ && (*q == ' ' || *q == '\t')) ++q;
    if (r->feed_end_ - q >= 4 && std::memcmp(q, "\r\n\r\n", 4) == 0) {
      raw = std::string_view(r->msg_start_, static_cast<size_t>(q + 4 - r->msg_start_));
    }
  }
  {
    RawHeadScope scope(&h, raw);
    r->handler_->onHead(h);
  }
  if (r->mode_ == Mode::kResponse) {
    // 1 = no body: a response to HEAD, and 1xx/204/304 whatever their
    // Content-Length says (RFC 9112 §6.3, rule 1).
    if (r->head_request_ || h.status == 204 || h.status == 304 || (h.status >= 100 && h.status < 200 && h.status != 101)) {
      return 1;
    }
  }
  if (h.upgrade) return 2;  // a tunnel follows: stop parsing
  return 0;
}

int Http1Reader::onBody(llhttp_t* p, const char* at, size_t len) {
  self(p)->handler_->onBody(at, len);
  return 0;
}

int Http1Reader::onChunkHeader(llhttp_t* p) {
  // The last chunk: pause, so that feed() checks the trailer section's
  // lines from its first byte (llhttp takes a bare LF for its end).
  if (p->content_length != 0) return 0;
  self(p)->last_chunk_ = true;
  return HPE_PAUSED;
}

int Http1Reader::onMessageComplete(llhttp_t* p) {
  Http1Reader* r = self(p);
  // 1xx interim responses (100 Continue) are complete messages of their own;
  // the final response follows on the same parse.
  if (!r->trailers_.empty()) r->handler_->onTrailers(r->trailers_);
  r->in_message_ = false;
  r->method_done_ = false;  // the next request's method is read by feed()
  r->msg_start_ = nullptr;  // a next message in the same feed did not start there
  r->handler_->onComplete();
  // An interim response pauses too: feed() goes on to the final one
  // itself, checking its head's lines from its first byte.
  if (r->mode_ == Mode::kResponse && r->head_.status >= 100 && r->head_.status < 200 && r->head_.status != 101) {
    r->interim_done_ = true;
  }
  return HPE_PAUSED;
}

llhttp_errno_t Http1Reader::execute(const char* p, size_t n) {
  exec_begin_ = p;
  llhttp_errno_t err = llhttp_execute(&parser_, p, n);
  exec_base_ += n;
  return err;
}

Http1Reader::Result Http1Reader::errorResult(llhttp_errno_t err, size_t len) {
  Result res;
  res.consumed = len;
  if (user_error_ != Error::kNone) {
    res.error = user_error_;
    res.why = user_why_;
  } else {
    res.error = Error::kBadMessage;
    res.why = llhttp_get_error_reason(&parser_) ? llhttp_get_error_reason(&parser_) : llhttp_errno_name(err);
  }
  return res;
}

Http1Reader::Result Http1Reader::feed(const char* data, size_t len) {
  Result res;
  feed_begin_ = data;
  feed_end_ = data + len;
  // A message that starts in this feed starts here (the reader pauses after
  // each message, so the next one is fed from its first byte).
  msg_start_ = in_message_ ? nullptr : data;
  last_value_end_ = nullptr;
  const char* end = data + len;
  const char* from = data;
  auto keepTail = [&] {
    for (size_t i = len; i > 0; --i) {
      if (data[i - 1] != ' ' && data[i - 1] != '\t') {
        prev_nonblank_ = data[i - 1];
        break;
      }
    }
  };
  llhttp_errno_t err = HPE_OK;
  for (;;) {
    if (mode_ == Mode::kRequest && !method_done_) {
      if (!in_message_) {
        // RFC 9112 §2.2: empty lines before a request line are skipped.
        while (from < end && (*from == '\r' || *from == '\n')) ++from;
        if (from == end) break;
        beginMessage();
      }
      bool began_here = head_.method.empty();
      size_t took = scanMethod(from, static_cast<size_t>(end - from));
      if (user_error_ != Error::kNone) return errorResult(HPE_USER, len);
      if (!method_done_) break;  // the method goes on in the next feed
      std::string_view m = head_.method;
      if (llhttpKnowsMethod(m) && began_here) {
        llhttp_method_len_ = m.size();  // llhttp reads it where it is
      } else {
        // Shown to llhttp from our copy (it came in pieces), or as "GET".
        std::string_view shown = llhttpKnowsMethod(m) ? m : std::string_view("GET");
        llhttp_method_len_ = shown.size();
        err = execute(shown.data(), shown.size());
        if (err != HPE_OK) return errorResult(err, len);
        from += took;
      }
    }
    if (mode_ == Mode::kResponse && !in_message_) {
      // Empty lines before a status line are skipped, as before a request
      // line (llhttp skips them too): whatever CRs and LFs come first,
      // however TCP split them — fuzzing found the line check refusing a
      // CR and its LF that arrived in different reads, and a run of CRs
      // taken for a start line. The check starts at the status line.
      while (from < end && (*from == '\r' || *from == '\n')) ++from;
      if (from == end) break;
      scan_head_ = true;
      start_line_seen_ = false;
      line_len_ = 0;
      last_byte_ = 0;
    }
    if (!scanHeadLines(from, end)) return errorResult(HPE_USER, len);
    err = execute(from, static_cast<size_t>(end - from));
    if (err == HPE_OK) break;
    if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) return errorResult(err, len);
    const char* pos = llhttp_get_error_pos(&parser_);
    if (pos == nullptr) pos = end;
    if (last_chunk_) {
      // RFC 9112 §7.1: the trailer section and the CRLF that ends the body
      // follow the last chunk; every line of them ends in CRLF (llhttp
      // takes a bare LF for the last one).
      last_chunk_ = false;
      llhttp_resume(&parser_);
      scan_head_ = true;
      start_line_seen_ = true;
      line_len_ = 0;
      last_byte_ = '\n';
      from = pos;
      continue;
    }
    if (interim_done_) {
      // A 1xx response ended: the final one follows in the same feed.
      interim_done_ = false;
      llhttp_resume(&parser_);
      from = pos;
      msg_start_ = nullptr;  // (rawHeadBytes: only a head fed from its first byte, as before)
      last_value_end_ = nullptr;
      continue;
    }
    res.consumed = static_cast<size_t>(pos - data);
    res.paused = true;
    keepTail();
    return res;
  }
  keepTail();
  res.consumed = len;
  return res;
}

void Http1Reader::resume() {
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);
  if (llhttp_get_errno(&parser_) == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(&parser_);
}

bool Http1Reader::finishOnEof() {
  if (!in_message_) return true;
  // on_message_complete pauses, so llhttp_finish reports HPE_PAUSED for a
  // body that did end; what counts is whether the message completed.
  llhttp_finish(&parser_);
  return !in_message_;
}

}  // namespace mulligan::proxy
