/**
 * The shell fixtures the repack suites share (run with the rootfs as cwd): BASE makes one path
 * per kind of change, EDITS makes every kind of change to them (content, mode, owner, mtime,
 * xattr, deletion of a file and of a tree, file→dir, dir→symlink, a hardlink pair, a FIFO, a
 * setuid file, a binary security.capability xattr, a new file). Suites add their own lines.
 */

/** A security.capability value (setfattr's base64 form) and the same bytes in hex. */
export const CAP_B64 = "0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=";
export const CAP_HEX = "0100000200200000000000000000000000000000";

export const REPACK_BASE = `
mkdir -p etc usr/bin deltree/sub dir2link var/lib
printf 'root:x:0:0:root:/root:/bin/sh\\n' > etc/passwd
echo content > mod-content; echo m > mod-mode; chmod 644 mod-mode; echo o > mod-owner
echo t > mod-mtime; echo x > mod-xattr; echo d > del-file
echo a > deltree/sub/a; echo b > deltree/sub/b; echo c > deltree/c
echo f > file2dir; echo x > dir2link/x; echo keep > keep
`;

export const REPACK_EDITS = `
echo new > added
echo changed > mod-content
chmod 600 mod-mode
chown 1000:1000 mod-owner
touch -d '2020-01-02 03:04:05' mod-mtime
setfattr -n user.x -v hello mod-xattr
rm del-file
rm -rf deltree
rm file2dir; mkdir file2dir; echo in > file2dir/inner
rm -rf dir2link; ln -s usr dir2link
echo hl > hl1; ln hl1 hl2
mkfifo fifo
echo s > suid; chmod 4755 suid
echo cap > capfile; setfattr -n security.capability -v ${CAP_B64} capfile
`;
