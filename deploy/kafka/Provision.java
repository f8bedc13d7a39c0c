// Applies the local broker's logins and ACLs in one JVM (run by `deploy/kafka.sh provision`
// with Java's single-file source launcher against the Kafka jars; no build step).
//
// usage: java -cp 'libs/*' Provision.java ADMIN_CONFIG CREDENTIALS_DIR ACL_FILE
//   ADMIN_CONFIG     client properties: the broker's INTERNAL listener and the node's TLS
//                    identity (that listener authenticates by certificate, so this works
//                    before any SCRAM login exists, e.g. on storage from a plaintext run)
//   CREDENTIALS_DIR  one file per principal holding its password: each becomes (or is
//                    reset to) a SCRAM-SHA-512 login
//   ACL_FILE         "principal TOPIC|GROUP LITERAL|PREFIXED name OPERATION" lines
//                    (python -m shared.kafka_security acls): the exact ALLOW bindings of
//                    those principals; any other binding they have is deleted
//
// Prints only counts and principal names, never a password.

import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class Provision {
  private static final int SCRAM_ITERATIONS = 8192;

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: Provision ADMIN_CONFIG CREDENTIALS_DIR ACL_FILE");
      System.exit(2);
    }
    Properties props = new Properties();
    try (InputStream in = new FileInputStream(args[0])) {
      props.load(in);
    }
    TreeMap<String, String> passwords = new TreeMap<>();
    try (Stream<Path> files = Files.list(Path.of(args[1]))) {
      for (Path f : (Iterable<Path>) files::iterator) {
        String name = f.getFileName().toString();
        if (name.startsWith(".")) continue;
        passwords.put(name, Files.readString(f, StandardCharsets.UTF_8).strip());
      }
    }
    Set<AclBinding> wanted = new HashSet<>();
    Set<String> managed = new HashSet<>();
    for (String line : Files.readAllLines(Path.of(args[2]), StandardCharsets.UTF_8)) {
      line = line.strip();
      if (line.isEmpty() || line.startsWith("#")) continue;
      String[] f = line.split("\\s+");
      if (f.length != 5) throw new IllegalArgumentException("bad ACL line: " + line);
      String principal = "User:" + f[0];
      managed.add(principal);
      wanted.add(
          new AclBinding(
              new ResourcePattern(
                  ResourceType.fromString(f[1]), f[3], PatternType.fromString(f[2])),
              new AccessControlEntry(
                  principal, "*", AclOperation.fromString(f[4]), AclPermissionType.ALLOW)));
    }
    for (String user : passwords.keySet()) managed.add("User:" + user);

    try (Admin admin = Admin.create(props)) {
      List<UserScramCredentialAlteration> logins = new ArrayList<>();
      ScramCredentialInfo info =
          new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS);
      for (var e : passwords.entrySet()) {
        logins.add(new UserScramCredentialUpsertion(e.getKey(), info, e.getValue()));
      }
      admin.alterUserScramCredentials(logins).all().get();
      System.out.println("logins: " + String.join(" ", passwords.keySet()));

      Set<AclBinding> existing = new HashSet<>(admin.describeAcls(AclBindingFilter.ANY).values().get());
      List<AclBindingFilter> stale = new ArrayList<>();
      for (AclBinding b : existing) {
        if (managed.contains(b.entry().principal()) && !wanted.contains(b)) {
          stale.add(b.toFilter());
        }
      }
      if (!stale.isEmpty()) admin.deleteAcls(stale).all().get();
      List<AclBinding> missing = new ArrayList<>();
      for (AclBinding b : wanted) if (!existing.contains(b)) missing.add(b);
      if (!missing.isEmpty()) admin.createAcls(missing).all().get();
      System.out.println(
          "acls: " + wanted.size() + " wanted, " + missing.size() + " created, "
              + stale.size() + " deleted");
    }
  }
}
