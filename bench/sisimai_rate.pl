#!/usr/bin/perl
# Time Sisimai (Debian libsisimai-perl) on a list of email files.
#
#   perl bench/sisimai_rate.pl --repeat N FILE...
#
# Reads every file into memory first, then parses the whole list N times with
# Sisimai->make(\$text) (delivered and vacation records included, as landed
# reports them too), and prints one JSON line: emails (per round), rounds (CPU
# seconds of each round), records (of the first round). Only the parse loops
# are timed, after one untimed warm-up round when N > 1; with --repeat 1 and
# the process timed from the outside, the caller gets the whole-process figure.
use strict;
use warnings;
use Sisimai;
use Time::HiRes qw(time);

my $repeat = 1;
if (@ARGV && $ARGV[0] eq '--repeat') { shift @ARGV; $repeat = shift @ARGV; }

my @texts;
for my $path (@ARGV) {
    open my $fh, '<:raw', $path or die "$path: $!";
    local $/;
    push @texts, scalar <$fh>;
    close $fh;
}

# One untimed round first when repeating: Sisimai loads its modules lazily.
if ($repeat > 1) {
    for my $text (@texts) { my $copy = $text; Sisimai->make(\$copy, 'delivered' => 1, 'vacation' => 1); }
}

my ($emails, $records) = (scalar @texts, 0);
my @rounds;
for my $round (1 .. $repeat) {
    # CPU time (user + system) of this process, like Python's time.process_time().
    my ($user, $system) = times;
    for my $text (@texts) {
        my $copy = $text;    # Sisimai may modify the buffer it is given
        my $parsed = Sisimai->make(\$copy, 'delivered' => 1, 'vacation' => 1);
        $records += scalar @{ $parsed // [] } if $round == 1;
    }
    my ($user2, $system2) = times;
    push @rounds, sprintf('%.6f', ($user2 - $user) + ($system2 - $system));
}
printf "{\"emails\": %d, \"rounds\": [%s], \"records\": %d}\n", $emails, join(', ', @rounds), $records;
