#include "auth/token_authenticator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "auth/token_set.h"
#include "tests/support/test_certificates.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::seqserve::testing::ReplaceFile;

CallerCredentials WithToken(const std::string& token) {
  CallerCredentials caller;
  caller.peer = "ipv4:127.0.0.1:1";
  caller.bearer_token = token;
  return caller;
}

std::string TempFile(const std::string& name) { return ::testing::TempDir() + "/" + name; }

TEST(TokenSet, ReadsTokensNamesCommentsAndBlankLines) {
  auto set = TokenSet::Parse("# who may call\n\nalice: a-secret \n  plain-token\r\n# end\n");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 2u);
  std::string name = "unset";
  EXPECT_TRUE(set->Find("a-secret", &name));
  EXPECT_EQ(name, "alice");
  EXPECT_TRUE(set->Find("plain-token", &name));
  EXPECT_EQ(name, "");
  EXPECT_FALSE(set->Find("a-secre", &name));
  EXPECT_FALSE(set->Find("a-secret ", &name));
  EXPECT_FALSE(set->Find("", &name));
  EXPECT_FALSE(set->Find("# who may call", &name));
}

TEST(TokenSet, RefusesBadLinesByNumberWithoutTheirText) {
  auto empty_token = TokenSet::Parse("good-one\nbob:\n");
  EXPECT_EQ(empty_token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(empty_token.status().message()), HasSubstr("line 2 has no token"));
  auto spaced = TokenSet::Parse("carol: two words-secret\n");
  EXPECT_EQ(spaced.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spaced.status().message()), HasSubstr("line 1"));
  EXPECT_THAT(std::string(spaced.status().message()), Not(HasSubstr("words-secret")));
  auto nothing = TokenSet::Parse("# only a comment\n\n");
  EXPECT_EQ(nothing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(nothing.status().message()), HasSubstr("no token"));
}

TEST(TokenSet, DigestsAreSha256) {
  // sha256("abc"), FIPS 180-2's example.
  const TokenDigest digest = DigestToken("abc");
  EXPECT_EQ(digest[0], 0xba);
  EXPECT_EQ(digest[1], 0x78);
  EXPECT_EQ(digest[31], 0xad);
}

TEST(TokenAuthenticator, AdmitsOnlyListedTokensAndNamesTheCaller) {
  const std::string path = TempFile("tokens-admit.txt");
  ReplaceFile(path, "alice:alice-token-1\nbob-token-2\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  std::string name;
  EXPECT_TRUE((*authenticator)->Identify(WithToken("alice-token-1"), &name).ok());
  EXPECT_EQ(name, "alice");
  EXPECT_TRUE((*authenticator)->Check(WithToken("bob-token-2")).ok());

  const absl::Status missing = (*authenticator)->Check(WithToken(""));
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("requires a bearer token"));
  const absl::Status wrong = (*authenticator)->Check(WithToken("alice-token-2"));
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(wrong.message()), HasSubstr("not accepted"));
  EXPECT_THAT(std::string(wrong.message()), Not(HasSubstr("alice-token")));
}

TEST(TokenAuthenticator, ARevokedTokenStopsWorkingWithoutARestart) {
  const std::string path = TempFile("tokens-revoke.txt");
  ReplaceFile(path, "alice:alice-token\nbob:bob-token\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  EXPECT_TRUE((*authenticator)->Check(WithToken("bob-token")).ok());
  EXPECT_FALSE((*authenticator)->Refresh());  // nothing changed

  ReplaceFile(path, "alice:alice-token\n");
  EXPECT_TRUE((*authenticator)->Refresh());
  EXPECT_EQ((*authenticator)->Check(WithToken("bob-token")).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE((*authenticator)->Check(WithToken("alice-token")).ok());
  EXPECT_EQ((*authenticator)->token_count(), 1u);
}

TEST(TokenAuthenticator, ABrokenOrMissingReplacementKeepsTheTokensInForce) {
  const std::string path = TempFile("tokens-broken.txt");
  ReplaceFile(path, "alice:alice-token\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();

  ReplaceFile(path, "# everything commented out\n");
  EXPECT_FALSE((*authenticator)->Refresh());
  EXPECT_TRUE((*authenticator)->Check(WithToken("alice-token")).ok());
  ASSERT_EQ(std::remove(path.c_str()), 0);
  EXPECT_FALSE((*authenticator)->Refresh());
  EXPECT_TRUE((*authenticator)->Check(WithToken("alice-token")).ok());
  // A good file again takes effect.
  ReplaceFile(path, "carol:carol-token\n");
  EXPECT_TRUE((*authenticator)->Refresh());
  EXPECT_TRUE((*authenticator)->Check(WithToken("carol-token")).ok());
  EXPECT_FALSE((*authenticator)->Check(WithToken("alice-token")).ok());
}

TEST(TokenAuthenticator, TheWatcherPicksUpAnEditWithinItsInterval) {
  const std::string path = TempFile("tokens-watch.txt");
  ReplaceFile(path, "old-token\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::Milliseconds(50)});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  ReplaceFile(path, "new-token\n");
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (!(*authenticator)->Check(WithToken("new-token")).ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE((*authenticator)->Check(WithToken("new-token")).ok());
  EXPECT_FALSE((*authenticator)->Check(WithToken("old-token")).ok());
}

TEST(TokenAuthenticator, AFileThatCannotBeUsedFailsTheStartNamingIt) {
  auto missing = TokenAuthenticator::Start({TempFile("no-such-tokens.txt"), absl::ZeroDuration()});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("no-such-tokens.txt"));
  const std::string empty = TempFile("tokens-empty.txt");
  ReplaceFile(empty, "\n# nobody\n");
  auto none = TokenAuthenticator::Start({empty, absl::ZeroDuration()});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("tokens-empty.txt: no token"));
}

}  // namespace
}  // namespace seqserve
